"""A server that echoes the credentials in its error body: the key, the Basic token, the
signature (as sent, upper-cased, percent-encoded) and the secret key it knows. Nothing of
it reaches the manifest, ``run --json``, ``status`` or ``status --json``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread
import pytest
from aiohttp import web

from backfill.scrub import request_secrets, scrub

from .conftest import TODAY, cli_command
from .test_secrets import ENV, files_under, forbidden, in_process, leaks, write_config

pytestmark = pytest.mark.anyio


def _echoing_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Basic ")
        user_pass = base64.b64decode(token).decode() if token else ""
        sig = request.headers.get("Signature", "")
        message = (f"bad request from {user_pass} (key {user_pass.partition(':')[2]}), "
                   f"Authorization: {auth}, token {token}, signature {sig.upper()} / "
                   f"{quote(sig)}; secrets known here: {ENV['MOE_T_ACME_SECRET']} "
                   f"{ENV['MOE_T_GLOBEX_KEY']}")
        body = {"error": {"message": message, "request_id": f"req-{sig}"}}
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def test_echoed_credentials_are_scrubbed_everywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    runner = web.AppRunner(_echoing_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        path = write_config(tmp_path, f"http://127.0.0.1:{port}")
        result = await anyio.run_process(
            cli_command("run", str(path), "--today", TODAY.isoformat(), "--no-progress",
                        "--json"), check=False)
        runs = [(result.returncode, result.stdout.decode(), result.stderr.decode())]
    finally:
        await runner.cleanup()
    for argv in (["status", str(path)], ["status", str(path), "--json"]):
        runs.append(await anyio.to_thread.run_sync(in_process, argv))
    secrets = forbidden(path)
    upper = {value.upper(): f"{label} (upper case)" for value, label in secrets.items()}
    found: list[str] = []
    for i, (_code, out, err) in enumerate(runs):
        found += leaks(secrets | upper, f"command {i} output", out + err)
    for p in files_under(tmp_path, skip=path):
        found += leaks(secrets | upper, str(p.relative_to(tmp_path)), p.read_bytes())
    assert not found, "\n".join(found)
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    errors = [json.loads(line).get("error") or "" for line in manifest]
    assert any("***" in e for e in errors)  # the message is kept, masked


def test_request_secrets_and_scrub() -> None:
    token = base64.b64encode(b"APP:the-api-key").decode()
    sig = "ab" * 32
    secrets = request_secrets({"Authorization": f"Basic {token}", "Signature": sig,
                               "MOE-APPKEY": "APP"}, ["s3cr=t+k"])
    assert set(secrets) == {f"Basic {token}", token, "the-api-key", sig, "s3cr=t+k"}
    text = (f"key the-api-key, {token}, {sig.upper()}, {quote('s3cr=t+k', safe='')}/x "
            f"Signature: {'cd' * 32}")
    assert scrub(text, secrets) == "key ***, ***, ***, ***/x Signature: ***"
    assert scrub("APP is fine", secrets) == "APP is fine"  # the app id is no secret
