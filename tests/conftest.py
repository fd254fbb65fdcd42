from __future__ import annotations

import pytest
from support import CORE_APP, Worker


@pytest.fixture(scope="module")
def core_worker():
    """One runtime serving tests/core_app for a whole test module."""
    with Worker(CORE_APP, env={"FLASH_SYNC_THREADS": "4"}) as worker:
        yield worker.wait_ready()
