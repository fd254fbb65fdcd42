"""The worker's health as the orchestrator sees it on `/ping`."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

import structlog

_log = structlog.get_logger("runtime.health")


class HealthState(enum.Enum):
    STARTING = "starting"  # port bound; unpacking, importing, running startup hooks
    READY = "ready"
    DEFUNCT = (
        "defunct"  # ready, but every slot or pool thread is held by a handler past its deadline
    )
    DRAINING = "draining"  # SIGTERM received; still serving what arrives


class Health:
    """The state `/ping` reports, and the in-flight count the drain waits on."""

    def __init__(self) -> None:
        self.state = HealthState.STARTING
        self.in_flight = 0
        self.last_request_end = time.monotonic()
        # Whether the worker's capacity is gone: set once the pool and the limiter exist.
        self.capacity_lost: Callable[[], bool] = lambda: False
        self._defunct = False

    def current(self) -> HealthState:
        """The state to report: DEFUNCT while a ready worker can start no request (the platform
        should replace it), logged when it begins and ends."""
        state = self.state
        if state is HealthState.READY:
            lost = self.capacity_lost()
            if lost != self._defunct:
                self._defunct = lost
                if lost:
                    _log.warning(
                        "capacity lost: every slot or handler thread runs past its deadline"
                    )
                else:
                    _log.info("capacity back: a stuck handler returned")
            if lost:
                return HealthState.DEFUNCT
        return state

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        self.last_request_end = time.monotonic()

    def idle_for(self) -> float:
        """Seconds with no request in flight (0 while one is)."""
        return 0.0 if self.in_flight else time.monotonic() - self.last_request_end
