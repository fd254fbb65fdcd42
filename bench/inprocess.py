"""The runtime's own cost per request, without a server or a socket.

    .venv/bin/python bench/inprocess.py [--requests 20000] [--path /noop] [--profile]

Builds the routed app exactly as a worker does (the benchmark app's manifest, default settings,
access log to /dev/null) and calls it as an ASGI app with an in-memory `receive` and `send`, on
one asyncio loop. Prints microseconds per request (best of 5 batches); `--profile` prints the
top of a cProfile of one batch. Server and network costs are what `make bench` adds on top.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The project root instead of bench/, whose profile.py would shadow the standard library's.
sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402

BODY = b'{"value": 1, "label": "bench"}'


def build_app(app_dir: Path):
    from runtime.app import build_routed_app
    from runtime.boot import load_application
    from runtime.handlers import SyncPool
    from runtime.health import Health, HealthState
    from runtime.limits import Limiter
    from runtime.logs import configure_logging
    from runtime.metrics import make_metrics
    from runtime.settings import Settings

    settings = Settings.from_env({"FLASH_MODULE_PATH": str(app_dir)})
    configure_logging(settings.log_level, settings.log_format)
    pool = SyncPool(4)
    loaded = load_application(
        settings, pool, Limiter(settings.max_concurrency, settings.max_pending)
    )
    health = Health()
    health.state = HealthState.READY
    return build_routed_app(loaded.handlers, settings, health, make_metrics(False), loaded.executor)


def scope_for(path: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def batch(app, path: str, requests: int) -> float:
    request = {"type": "http.request", "body": BODY, "more_body": False}
    statuses = []

    async def receive():
        return request

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for _ in range(requests):
        await app(scope_for(path), receive, send)
    elapsed = time.perf_counter() - start
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")
    return elapsed / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--path", default="/noop")
    parser.add_argument("--app", default=str(ROOT / "bench" / "apps" / "noop"))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    os.dup2(devnull, 1)  # the access log and boot lines go nowhere
    try:
        app = build_app(Path(args.app))
        loop = asyncio.new_event_loop()
        loop.run_until_complete(batch(app, args.path, 1000))  # warm up
        runs = [loop.run_until_complete(batch(app, args.path, args.requests)) for _ in range(5)]
        report = ""
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            loop.run_until_complete(batch(app, args.path, args.requests))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            report = out.getvalue()
        for task in asyncio.all_tasks(loop):  # the deadline watchdog
            task.cancel()
        loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
        loop.close()
        sys.stdout.flush()
    finally:
        os.dup2(saved, 1)
    print(
        f"{args.path}: {min(runs):.1f} us/request (best of 5 x {args.requests}; all: "
        + ", ".join(f"{r:.1f}" for r in runs)
        + ")"
    )
    if report:
        print(report)


if __name__ == "__main__":
    main()
