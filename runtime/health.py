"""The worker's health as the orchestrator sees it on `/ping`."""

from __future__ import annotations

import enum
import time


class HealthState(enum.Enum):
    STARTING = "starting"  # port bound; unpacking, importing, running startup hooks
    READY = "ready"
    DRAINING = "draining"  # SIGTERM received; still serving what arrives


class Health:
    """The state `/ping` reports, and the in-flight count the drain waits on."""

    def __init__(self) -> None:
        self.state = HealthState.STARTING
        self.in_flight = 0
        self.last_request_end = time.monotonic()

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        self.last_request_end = time.monotonic()

    def idle_for(self) -> float:
        """Seconds with no request in flight (0 while one is)."""
        return 0.0 if self.in_flight else time.monotonic() - self.last_request_end
