"""Handler deadlines, enforced by one watchdog instead of a timer per request.

`asyncio.timeout` (or `wait_for`) schedules and cancels a timer for every call, which shows up
on a busy worker. FLASH_REQUEST_TIMEOUT is measured in seconds, so a watchdog that looks at the
open deadlines ten times a second is precise enough and costs a dict insert per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

RESOLUTION = 0.1  # seconds between watchdog passes: a timeout fires at most this late


class DeadlineExceeded(Exception):
    """The awaited work ran past its deadline and was cancelled."""


class Deadlines:
    """Cancels tasks whose deadline has passed; `run` awaits work under a deadline."""

    def __init__(self) -> None:
        self._open: dict[asyncio.Task[Any], float] = {}  # task -> monotonic deadline
        self._fired: set[asyncio.Task[Any]] = set()  # tasks this watchdog cancelled
        self._watchdog: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, work: Awaitable[Any], seconds: float | None) -> Any:
        """Await `work`; DeadlineExceeded when it is still running after `seconds`.

        Called from the request's own task, one deadline at a time per task.
        """
        if seconds is None:
            return await work
        loop = self._loop
        if loop is None or not loop.is_running() or self._watchdog is None or self._watchdog.done():
            # Looked up once: asking for the running loop costs a system call (getpid) each time.
            loop = self._loop = asyncio.get_running_loop()
            self._watchdog = loop.create_task(self._watch())
        task = asyncio.current_task(loop)
        assert task is not None
        self._open[task] = time.monotonic() + seconds
        try:
            return await work
        except asyncio.CancelledError:
            if task not in self._fired:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:
                uncancel()  # this cancellation was ours, and is handled here
            raise DeadlineExceeded from None
        finally:
            del self._open[task]
            if self._fired:
                self._fired.discard(task)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(RESOLUTION)
            now = time.monotonic()
            for task, deadline in list(self._open.items()):
                if deadline <= now and task not in self._fired:
                    self._fired.add(task)
                    task.cancel()
