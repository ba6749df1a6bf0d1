"""backfill.trust: contexts made while aiohttp is imported read the system's CA file at
their first use, and trust what a context made the usual way trusts."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from backfill.trust import DeferredTrustContext, deferred_default_trust


def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> None:
    """A TLS handshake between two contexts in memory (no socket); raises SSLError."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    near = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    far = server.wrap_bio(s_in, s_out, server_side=True)
    done = {near: False, far: False}
    for _ in range(20):
        for end in (near, far):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


@pytest.fixture
def system_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A throw-away CA as the system's only trust (SSL_CERT_FILE); its server's context."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "no-certs").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-certs"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    return server


def test_the_system_trust_is_read_at_the_first_handshake(system_ca: ssl.SSLContext,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "absent.pem"))
    with deferred_default_trust():
        context = ssl.create_default_context()
    assert type(context) is DeferredTrustContext
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # read now, not above
    handshake(context, system_ca)
    assert context.cert_store_stats()["x509_ca"] == 1


def test_a_deferred_context_refuses_what_the_usual_one_refuses(
        system_ca: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "absent.pem"))
    with deferred_default_trust():
        deferred = ssl.create_default_context()
    for context in (deferred, ssl.create_default_context()):
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(context, system_ca)


def test_the_store_is_full_when_looked_at(system_ca: ssl.SSLContext) -> None:
    with deferred_default_trust():
        deferred = ssl.create_default_context()
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.set_default_verify_paths()
    usual = ssl.create_default_context()
    assert deferred.cert_store_stats() == usual.cert_store_stats()
    assert deferred.get_ca_certs() == usual.get_ca_certs()
    assert unverified.get_ca_certs(binary_form=True) == usual.get_ca_certs(binary_form=True)


def test_contexts_made_outside_are_untouched_even_after_an_error() -> None:
    with pytest.raises(ZeroDivisionError), deferred_default_trust():
        assert type(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)) is DeferredTrustContext
        _ = 1 / 0
    assert type(ssl.create_default_context()) is ssl.SSLContext
    assert type(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)) is ssl.SSLContext
    assert isinstance(DeferredTrustContext(ssl.PROTOCOL_TLS_CLIENT), ssl.SSLContext)


def test_importing_the_engine_parses_no_ca_file() -> None:
    """aiohttp's own contexts, made when backfill.client imports it, are still unloaded
    (a fresh interpreter: here aiohttp may have been imported first)."""
    code = ("import json, backfill.engine, aiohttp.connector as c\n"
            "print(json.dumps([type(x).__name__ + str(x._deferred) for x in "
            "(c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED)]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert json.loads(out) == ["DeferredTrustContextTrue"] * 2
