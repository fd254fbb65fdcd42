"""SIGTERM: /ping turns 503, what is in flight completes, the process exits 0."""

from __future__ import annotations

import signal
import time

import httpx
from support import (
    CORE_APP,
    Worker,
    hold_app,
    lb_manifest,
    post_in_background,
    wait_marks,
    write_app,
)

# The metrics gauge shows what is in flight before the signal; the drain's own log lines say what
# it saw when the signal arrived.
_ENV = {"FLASH_METRICS": "1"}


def _draining(worker: Worker) -> dict:
    return worker.wait_log(lambda line: line["event"] == "draining")


def _hold_one(worker: Worker, route: str, release):
    """A request to a HOLD_APP route, in its handler and counted in flight, until `release` exists."""
    thread, results = post_in_background(worker.url + route)
    wait_marks(release, route)
    worker.wait_gauges(in_flight=1)
    return thread, results


def test_sigterm_with_a_request_in_flight(tmp_path):
    release = tmp_path / "release"
    # The listener closes at half the graceful timeout (6 s) since a request stays in flight; the
    # request still has the other half to finish once the server stops accepting.
    env = {
        **_ENV,
        "HOLD_RELEASE": str(release),
        "FLASH_GRACEFUL_TIMEOUT": "12",
        "FLASH_DRAIN_QUIET": "0.5",
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        thread, results = _hold_one(worker, "/hang", release)
        worker.signal(signal.SIGTERM)

        # /ping turns 503 draining while the request is still held in its handler.
        draining = worker.wait_status(503, timeout=10)
        assert draining.json() == {"status": "draining"}
        assert _draining(worker)["in_flight"] == 1
        # It is still held when the server has stopped accepting and only finishes what is in flight.
        finishing = worker.wait_log(
            lambda line: line["event"] == "finishing in-flight requests", timeout=30
        )
        assert finishing["in_flight"] == 1 and results == []

        release.touch()
        thread.join(30)
        assert len(results) == 1 and isinstance(results[0], httpx.Response), results
        assert (results[0].status_code, results[0].json()["done"]) == (200, True)
        assert worker.wait_exit(30) == 0
        events = [line["event"] for line in worker.logs()]
        assert (
            events.index("draining")
            < events.index("closing listener")
            < events.index("finishing in-flight requests")
            < events.index("stopped")
        )


def test_requests_arriving_while_draining_are_served(tmp_path):
    release = tmp_path / "release"
    env = {
        **_ENV,
        "HOLD_RELEASE": str(release),
        "FLASH_GRACEFUL_TIMEOUT": "60",
        "FLASH_DRAIN_QUIET": "2",
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        thread, results = _hold_one(worker, "/hold", release)
        worker.signal(signal.SIGTERM)
        worker.wait_status(503, timeout=10)
        # The held request keeps the listener open (the drain waits for FLASH_DRAIN_QUIET without a
        # request in flight, or half the graceful timeout). The load balancer has not noticed yet:
        # a new request still gets an answer, with Connection: close so the client reconnects elsewhere.
        late = httpx.post(worker.url + "/quick-async", json={}, timeout=10)
        assert late.status_code == 200 and late.headers["connection"] == "close"
        release.touch()
        thread.join(30)
        assert isinstance(results[0], httpx.Response) and results[0].json() == {"held": True}
        assert worker.wait_exit(30) == 0


def test_idle_worker_exits_without_waiting_for_the_graceful_timeout():
    # The graceful timeout is longer than wait_exit waits: only a drain that saw nothing in flight
    # and closed after FLASH_DRAIN_QUIET exits in time.
    with Worker(
        CORE_APP, env={"FLASH_DRAIN_QUIET": "0.5", "FLASH_GRACEFUL_TIMEOUT": "120"}
    ) as worker:
        worker.wait_ready()
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(60) == 0
        assert _draining(worker)["in_flight"] == 0


def test_sigint_drains_like_sigterm():
    with Worker(CORE_APP, env={"FLASH_DRAIN_QUIET": "0.2"}) as worker:
        worker.wait_ready()
        worker.signal(signal.SIGINT)
        assert worker.wait_exit(30) == 0
        assert _draining(worker)["signal"] == "SIGINT"


def test_second_signal_exits_at_once(tmp_path):
    # The held request is never released: only the second signal can end the process.
    never = tmp_path / "never"
    env = {
        **_ENV,
        "HOLD_RELEASE": str(never),
        "FLASH_GRACEFUL_TIMEOUT": "120",
        "FLASH_DRAIN_QUIET": "0.2",
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        thread, _ = _hold_one(worker, "/hang", never)
        worker.signal(signal.SIGTERM)
        worker.wait_status(503, timeout=10)
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(60) == 1
        worker.wait_log(lambda line: line["event"] == "second signal, exiting now")
        thread.join(15)


def test_in_flight_request_past_the_graceful_timeout_does_not_hold_the_exit(tmp_path):
    # The held request is never released: the process exits because the graceful timeout ended.
    never = tmp_path / "never"
    env = {
        **_ENV,
        "HOLD_RELEASE": str(never),
        "FLASH_GRACEFUL_TIMEOUT": "2",
        "FLASH_DRAIN_QUIET": "0.2",
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        thread, results = _hold_one(worker, "/hold", never)
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(60) == 0
        assert _draining(worker)["in_flight"] == 1
        thread.join(15)
        assert len(results) == 1 and not (
            isinstance(results[0], httpx.Response) and results[0].status_code == 200
        )


def test_sigterm_while_still_booting_exits_without_waiting_for_the_import(tmp_path):
    # The module's import never ends: only a worker that stops without it can exit.
    never = tmp_path / "never"
    app = write_app(
        tmp_path / "app",
        lb_manifest(("slowmod", "hello", "GET", "/hello")),
        {
            "slowmod.py": f"import os, time\nwhile not os.path.exists({str(never)!r}):\n    time.sleep(0.05)\n"
            "async def hello() -> dict:\n    return {}\n",
        },
    )
    with Worker(app) as worker:
        worker.wait_status(204, timeout=30)
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(30) == 0
        assert _draining(worker)["booting"] is True


def test_sigterm_exits_cleanly_when_stdout_is_gone():
    """A worker whose log reader went away (the pipe closed) still drains and exits 0 on SIGTERM:
    the first drain log line must not be what stops the drain."""
    import os
    import subprocess
    import sys

    from support import ENTRYPOINT, base_env, free_port

    env = {
        **base_env(CORE_APP),
        "PORT": str(free_port()),
        "FLASH_GRACEFUL_TIMEOUT": "5",
        "FLASH_DRAIN_QUIET": "0.2",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{env['PORT']}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (
                "the worker did not become ready"
            )
            time.sleep(0.05)
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone: every later write to stdout fails with EPIPE
        assert (
            httpx.post(url + "/scalars", json={"y": 1}).status_code == 200
        )  # an access line to write
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


STUCK = """
import threading
import time

LEAKED = threading.Thread(target=lambda: time.sleep(3600), name="app-leaked", daemon=False)
LEAKED.start()


def stuck() -> dict:
    while True:
        time.sleep(0.05)


def fine() -> dict:
    return {"ok": True}
"""


def test_sigterm_ends_the_process_within_the_graceful_timeout_whatever_the_threads_do(tmp_path):
    """A `def` handler that never returns and a non-daemon thread the app leaked would keep Python
    from exiting (it joins such threads at exit); the worker exits by the deadline anyway."""
    app = write_app(
        tmp_path / "app",
        lb_manifest(("stuck", "stuck", "POST", "/stuck"), ("stuck", "fine", "GET", "/fine")),
        {"stuck.py": STUCK},
    )
    env = {"FLASH_GRACEFUL_TIMEOUT": "3", "FLASH_DRAIN_QUIET": "0.2", "FLASH_METRICS": "1"}
    with Worker(app, env=env) as worker:
        worker.wait_ready()
        thread, _ = post_in_background(worker.url + "/stuck")
        assert httpx.get(worker.url + "/fine").json() == {"ok": True}
        worker.wait_gauges(in_flight=1)
        worker.signal(signal.SIGTERM)
        # Neither thread ever ends: the process exits only because the deadline ends it.
        status = worker.proc.wait(timeout=60)
        thread.join(timeout=10)
    assert status == 1, worker.output()
    assert worker.wait_log(lambda line: line["event"] == "draining")["in_flight"] == 1
    stopped = worker.wait_log(
        lambda line: line["event"] == "threads still running at exit, exiting anyway"
    )
    assert "app-leaked" in stopped["threads"] and any(
        name.startswith("handler") for name in stopped["threads"]
    )
