"""Object-store URLs: the parser lives in :mod:`backfill.destination` (import-light, for
config and ``plan``); re-exported here for the store's own modules."""

from __future__ import annotations

from ...destination import Cloud, ObjectURL, ObjectURLError, is_object_url, parse_object_url

__all__ = ["Cloud", "ObjectURL", "ObjectURLError", "is_object_url", "parse_object_url"]
