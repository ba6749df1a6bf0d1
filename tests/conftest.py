from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The project runs on asyncio only."""
    return "asyncio"
