"""A small load-balanced app for the cluster tests: a route that takes a while, and a slow boot."""

import asyncio
import os
import time


async def work(ms: int = 100) -> dict:
    """Hold the request for `ms` milliseconds, so that requests are in flight when a worker dies."""
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms, "pid": os.getpid()}


async def wait(ms: int = 100) -> dict:
    """The same as `work` for GET, which HAProxy may replay on another worker."""
    return await work(ms)


async def health() -> dict:
    return {"status": "healthy"}


def slow_start() -> None:
    """FLASH_STARTUP_HOOK target: a model load that takes CLUSTER_APP_STARTUP_SECONDS."""
    time.sleep(float(os.environ.get("CLUSTER_APP_STARTUP_SECONDS", "3")))
