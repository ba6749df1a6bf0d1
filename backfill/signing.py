"""Request authentication (api.md). Pure functions, no I/O."""

from __future__ import annotations

import base64
import hashlib


def signature(app_id: str, filename: str, secret_key: str) -> str:
    """``sha256_hex("{app_id}|{filename}|{secret_key}")`` over the raw (unencoded) file name."""
    return hashlib.sha256(f"{app_id}|{filename}|{secret_key}".encode()).hexdigest()


def basic_auth(app_id: str, api_key: str) -> str:
    """``Basic base64("{app_id}:{api_key}")``."""
    token = base64.b64encode(f"{app_id}:{api_key}".encode()).decode("ascii")
    return f"Basic {token}"


def request_headers(app_id: str, filename: str, api_key: str, secret_key: str) -> dict[str, str]:
    """The three headers every request carries. Values are secrets: never log them."""
    return {
        "Authorization": basic_auth(app_id, api_key),
        "Signature": signature(app_id, filename, secret_key),
        "MOE-APPKEY": app_id,
    }
