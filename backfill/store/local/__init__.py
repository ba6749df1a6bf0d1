"""The local-filesystem store (:class:`LocalStore`) and the durability helpers it and the
journal share (:mod:`.durability`)."""

from __future__ import annotations

from .dirs import prepare_dirs
from .part import PART_SUFFIX, LocalReceived
from .store import DEFAULT_MAX_FILE_BYTES, LocalStore

__all__ = ["DEFAULT_MAX_FILE_BYTES", "PART_SUFFIX", "LocalReceived", "LocalStore", "prepare_dirs"]
