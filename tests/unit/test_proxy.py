"""The proxy decision: environment variables, NO_PROXY matching, unsupported schemes."""

from __future__ import annotations

import base64

import pytest

from backfill.errors import ConfigError
from backfill.proxy import ProxyTable, bypassed, masked, parse_proxy, proxies_from_env


def route(env: dict[str, str], url: str, configured: str | None = None) -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    r = ProxyTable(configured, env).route(parts.scheme, parts.hostname or "", port)
    return r.url if r else None


def test_scheme_picks_its_variable_and_all_proxy_is_the_fallback() -> None:
    env = {"HTTPS_PROXY": "http://tls-proxy:3128", "ALL_PROXY": "http://any:8080"}
    assert route(env, "https://api-02.moengage.com") == "http://tls-proxy:3128"
    assert route(env, "http://sim.local:9000") == "http://any:8080"
    assert route({}, "https://api-02.moengage.com") is None


def test_lower_case_wins_and_an_empty_lower_case_turns_the_proxy_off() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}
    assert route(env, "https://h") == "http://lower:2"
    assert route({"HTTPS_PROXY": "http://upper:1", "https_proxy": ""}, "https://h") is None


def test_http_proxy_upper_case_is_ignored_under_cgi() -> None:
    assert proxies_from_env({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}) == {}
    assert proxies_from_env({"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"}) == {
        "http": ("http://p:1", "http_proxy")}


def test_configured_proxy_overrides_the_environment_and_empty_means_direct() -> None:
    env = {"HTTPS_PROXY": "http://env:1"}
    assert route(env, "https://h", configured="proxy.corp:3128") == "http://proxy.corp:3128"
    assert route(env, "https://h", configured="") is None


@pytest.mark.parametrize(("entries", "host", "port", "expected"), [
    (("*",), "api-02.moengage.com", 443, True),
    (("moengage.com",), "api-02.moengage.com", 443, True),
    ((".moengage.com",), "api-02.moengage.com", 443, True),
    (("*.moengage.com",), "moengage.com", 443, True),
    (("engage.com",), "api-02.moengage.com", 443, False),  # a suffix, not a domain
    (("moengage.com:443",), "api-02.moengage.com", 443, True),
    (("moengage.com:8443",), "api-02.moengage.com", 443, False),
    (("10.0.0.0/8",), "10.1.2.3", 443, True),
    (("10.0.0.0/8",), "11.1.2.3", 443, False),
    (("127.0.0.1",), "localhost", 8080, True),  # loopback matches loopback however spelt
    (("localhost",), "127.0.0.1", 8080, True),
    (("localhost",), "::1", 8080, True),
    (("::1",), "[::1]", 8080, True),
    (("[::1]:8080",), "::1", 8080, True),
    (("127.0.0.1",), "10.0.0.1", 8080, False),
    (("Example.COM.",), "www.example.com", 443, True),
    ((), "localhost", 80, False),
])
def test_no_proxy_matching(entries: tuple[str, ...], host: str, port: int,
                           expected: bool) -> None:
    assert bypassed(host, port, entries) is expected


def test_no_proxy_applies_to_the_configured_proxy_too() -> None:
    env = {"NO_PROXY": "localhost, .internal"}
    assert route(env, "http://127.0.0.1:9000", configured="http://p:3128") is None
    assert route(env, "https://a.internal", configured="http://p:3128") is None
    assert route(env, "https://api-01.moengage.com", configured="http://p:3128") == \
        "http://p:3128"


def test_credentials_become_a_proxy_header_and_are_never_shown() -> None:
    r = parse_proxy("http://alice:s%3Acret@proxy:3128", "HTTPS_PROXY")
    assert r.url == "http://proxy:3128"
    assert r.headers["Proxy-Authorization"] == "Basic " + base64.b64encode(
        b"alice:s:cret").decode()
    assert "cret" not in repr(r)
    assert masked("http://alice:s%3Acret@proxy:3128") == "http://alice:***@proxy:3128"


@pytest.mark.parametrize("url", ["https://proxy:3128", "socks5://proxy:1080",
                                 "socks5h://u:secret@proxy:1080"])
def test_unsupported_proxy_scheme_is_refused_not_skipped(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        ProxyTable(None, {"HTTPS_PROXY": url})
    message = str(err.value)
    assert "HTTPS_PROXY" in message and "not supported" in message
    assert "refusing to go direct" in message
    assert "secret" not in message


def test_unused_scheme_variables_do_not_matter() -> None:
    ProxyTable(None, {"FTP_PROXY": "socks5://x:1", "NO_PROXY": "*"})


def test_bad_port_and_missing_host_name_the_source() -> None:
    with pytest.raises(ConfigError, match=r"\[http\] proxy.*not a valid URL"):
        ProxyTable("http://proxy:99999", {})
    with pytest.raises(ConfigError, match="no host name"):
        ProxyTable("http://:3128", {})


def test_scheme_less_proxy_is_http_with_port_80_by_default() -> None:
    assert parse_proxy("proxy.corp", "x").url == "http://proxy.corp:80"
    assert parse_proxy("[::1]:3128", "x").url == "http://[::1]:3128"
