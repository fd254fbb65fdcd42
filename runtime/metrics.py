"""Prometheus metrics, in a registry of the worker's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

UNMATCHED = "<unmatched>"
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)  # one label for every path no route matched, to bound cardinality
_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
)


class NoMetrics:
    """What the runtime records when `/metrics` is served nowhere: nothing, at no cost."""

    content_type = "text/plain"

    def request_started(self) -> None:
        pass

    def request_finished(self, method: str, route: str | None, status: int, seconds: float) -> None:
        pass

    def watch_pending(self, read: Callable[[], float]) -> None:
        pass

    def watch_slots(self, read: Callable[[], float]) -> None:
        pass

    def record_boot(self, phases: dict[str, float]) -> None:
        pass

    def render(self) -> bytes:
        return b""


def make_metrics(enabled: bool) -> Metrics | NoMetrics:
    """prometheus-client is imported only when some listener serves `/metrics`."""
    return Metrics() if enabled else NoMetrics()


class Metrics:
    """Request counts and latency by route and status, in-flight, pending and slot gauges, boot phases."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        self.content_type = CONTENT_TYPE_LATEST
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flash_requests",
            "Requests answered, by method, route and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "flash_request_duration_seconds",
            "Time from request start to the end of the response.",
            ("route", "status"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "flash_requests_in_flight", "Requests being served now.", registry=self.registry
        )
        self.pending = Gauge(
            "flash_requests_pending", "Requests waiting for a handler slot.", registry=self.registry
        )
        self.slots = Gauge(
            "flash_handler_slots_in_use",
            "Handler slots taken (FLASH_MAX_CONCURRENCY caps them when set).",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}
        self.boot = Gauge(
            "flash_boot_phase_seconds",
            "Duration of each boot phase.",
            ("phase",),
            registry=self.registry,
        )

    def request_started(self) -> None:
        self.in_flight.inc()

    def request_finished(self, method: str, route: str | None, status: int, seconds: float) -> None:
        self.in_flight.dec()
        key = (method, route, status)
        children = self._children.get(key)
        if children is None and method not in _METHODS:
            key = (method := "OTHER", route, status)  # clients choose the method: bound the label
            children = self._children.get(key)
        if children is None:  # labels() costs a lock and a lookup: keep the children per key
            label_route, code = route or UNMATCHED, str(status)
            children = self._children[key] = (
                self.requests.labels(method, label_route, code),
                self.latency.labels(label_route, code),
            )
        children[0].inc()
        children[1].observe(seconds)

    def watch_pending(self, read: Callable[[], float]) -> None:
        self.pending.set_function(read)

    def watch_slots(self, read: Callable[[], float]) -> None:
        self.slots.set_function(read)

    def record_boot(self, phases: dict[str, float]) -> None:
        for phase, seconds in phases.items():
            self.boot.labels(phase).set(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
