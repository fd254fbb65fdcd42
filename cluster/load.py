"""A load loop bounded in count and time that records every request's outcome.

Runs httpx on asyncio in a background thread so a caller can restart or kill workers while it
runs, then counts exactly: every request sent is either ok (the expected status) or failed
(another status or a transport error), with its start and end times and the worker that
answered (HAProxy's X-Flash-Worker header).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Call:
    """One kind of request the loop sends, and the status that counts as success."""

    method: str
    path: str
    json: object | None = None
    expect: int = 200


@dataclass(frozen=True)
class Outcome:
    call: Call
    start: float
    end: float
    status: int | None
    error: str | None
    worker: str | None

    @property
    def ok(self) -> bool:
        return self.status == self.call.expect


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def by_worker(self) -> Counter:
        return Counter(o.worker for o in self.outcomes if o.ok)

    def line(self, scenario: str) -> str:
        return f"{scenario}: sent={self.sent} ok={self.ok} failed={self.failed}"

    def describe_failures(self, limit: int = 10) -> str:
        kinds = Counter(o.error or f"HTTP {o.status}" for o in self.failures)
        return ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common(limit))


class Load:
    """`concurrency` clients sending `calls` in turn until stopped, `max_requests` or `max_seconds`."""

    def __init__(
        self,
        url: str,
        calls: list[Call],
        concurrency: int = 8,
        max_requests: int = 20000,
        max_seconds: float = 60.0,
        timeout: float = 30.0,
    ):
        self.url = url
        self.calls = calls
        self.concurrency = concurrency
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.report = Report()
        self._issued = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> Report:
        """Stop sending, wait for the requests in flight, and return the report."""
        self._stop.set()
        self._thread.join(timeout=self.timeout + 10)
        return self.report

    def wait(self) -> Report:
        """Wait until the loop hits one of its bounds."""
        self._thread.join(timeout=self.max_seconds + self.timeout + 10)
        return self.report

    def running_for(self, seconds: float) -> None:
        """Sleep while the load runs (returns early if the loop ended)."""
        self._thread.join(timeout=seconds)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        deadline = time.monotonic() + self.max_seconds
        async with httpx.AsyncClient(
            base_url=self.url, limits=limits, timeout=self.timeout
        ) as client:
            await asyncio.gather(
                *(self._client(client, i, deadline) for i in range(self.concurrency))
            )

    async def _client(self, client: httpx.AsyncClient, index: int, deadline: float) -> None:
        while (
            not self._stop.is_set()
            and self._issued < self.max_requests
            and time.monotonic() < deadline
        ):
            call = self.calls[(self._issued + index) % len(self.calls)]
            self._issued += 1
            start = time.monotonic()
            status = error = worker = None
            try:
                response = await client.request(call.method, call.path, json=call.json)
                status = response.status_code
                worker = response.headers.get("x-flash-worker")
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            self.report.outcomes.append(
                Outcome(call, start, time.monotonic(), status, error, worker)
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send bounded load to a URL and count outcomes.")
    parser.add_argument("url")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--path", default="/process")
    parser.add_argument("--json", default='{"input_data": {"n": 1}}', help="request body")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    body = json.loads(args.json) if args.method.upper() not in ("GET", "HEAD") else None
    load = Load(
        args.url,
        [Call(args.method.upper(), args.path, body)],
        args.concurrency,
        args.requests,
        args.seconds,
    )
    started = time.monotonic()
    report = load.start().wait()
    elapsed = time.monotonic() - started
    print(report.line("load"), f"seconds={elapsed:.1f} rps={report.sent / elapsed:.0f}")
    print("by worker:", dict(report.by_worker()))
    if report.failed:
        print("failures:", report.describe_failures())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
