"""SIGTERM: /ping turns 503 at once, what is in flight completes, the process exits 0."""

from __future__ import annotations

import signal
import threading
import time

import httpx
from support import CORE_APP

from support import Worker


def _post_in_background(url: str, json: dict, results: list) -> threading.Thread:
    def run() -> None:
        try:
            results.append(httpx.post(url, json=json, timeout=30))
        except httpx.HTTPError as exc:  # recorded, so the test can fail on it
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_in_flight() -> None:
    """Give the background request time to reach its handler (it sleeps for seconds there)."""
    time.sleep(0.5)


def test_sigterm_with_a_slow_request_in_flight(tmp_path):
    with Worker(CORE_APP, env={"FLASH_GRACEFUL_TIMEOUT": "20", "FLASH_DRAIN_QUIET": "0.5"}) as worker:
        worker.wait_ready()
        results: list = []
        thread = _post_in_background(worker.url + "/slow-sync", {"seconds": 3}, results)
        _wait_in_flight()
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)

        # /ping turns 503 draining at once, while the slow request still runs.
        draining = worker.wait_status(503, timeout=2)
        assert draining.json() == {"status": "draining"}
        assert time.monotonic() - sent < 1.5

        thread.join(30)
        assert len(results) == 1 and isinstance(results[0], httpx.Response), results
        assert results[0].status_code == 200 and results[0].json()["slept"] == 3
        assert worker.wait_exit(30) == 0
        events = [line["event"] for line in worker.logs()]
        assert events.index("draining") < events.index("closing listener") < events.index("finishing in-flight requests") < events.index("stopped")


def test_requests_arriving_while_draining_are_served(tmp_path):
    with Worker(CORE_APP, env={"FLASH_GRACEFUL_TIMEOUT": "20", "FLASH_DRAIN_QUIET": "2"}) as worker:
        worker.wait_ready()
        results: list = []
        thread = _post_in_background(worker.url + "/slow-async", {"seconds": 2}, results)
        _wait_in_flight()
        worker.signal(signal.SIGTERM)
        worker.wait_status(503, timeout=2)
        # The load balancer has not noticed yet: a new request still gets an answer,
        # with Connection: close so the client reconnects elsewhere.
        late = httpx.post(worker.url + "/scalars", json={"y": 1}, timeout=10)
        assert late.status_code == 200 and late.headers["connection"] == "close"
        thread.join(30)
        assert isinstance(results[0], httpx.Response) and results[0].status_code == 200
        assert worker.wait_exit(30) == 0


def test_idle_worker_exits_promptly_on_sigterm():
    with Worker(CORE_APP, env={"FLASH_DRAIN_QUIET": "0.5"}) as worker:
        worker.wait_ready()
        start = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(10) == 0
        assert time.monotonic() - start < 5


def test_sigint_drains_like_sigterm():
    with Worker(CORE_APP, env={"FLASH_DRAIN_QUIET": "0.2"}) as worker:
        worker.wait_ready()
        worker.signal(signal.SIGINT)
        assert worker.wait_exit(10) == 0


def test_second_signal_exits_at_once():
    with Worker(CORE_APP, env={"FLASH_GRACEFUL_TIMEOUT": "30", "FLASH_DRAIN_QUIET": "0.2"}) as worker:
        worker.wait_ready()
        results: list = []
        thread = _post_in_background(worker.url + "/slow-sync", {"seconds": 10}, results)
        _wait_in_flight()
        worker.signal(signal.SIGTERM)
        worker.wait_status(503, timeout=2)
        start = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(10) == 1
        assert time.monotonic() - start < 3
        thread.join(15)


def test_in_flight_request_past_the_graceful_timeout_does_not_hold_the_exit():
    with Worker(CORE_APP, env={"FLASH_GRACEFUL_TIMEOUT": "2", "FLASH_DRAIN_QUIET": "0.2"}) as worker:
        worker.wait_ready()
        results: list = []
        thread = _post_in_background(worker.url + "/slow-async", {"seconds": 20}, results)
        _wait_in_flight()
        start = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(15) == 0
        assert time.monotonic() - start < 6
        thread.join(15)


def test_sigterm_while_still_booting_exits_without_waiting_for_the_import(tmp_path):
    from support import lb_manifest, write_app

    app = write_app(tmp_path / "app", lb_manifest(("slowmod", "hello", "GET", "/hello")), {
        "slowmod.py": "import time\ntime.sleep(30)\nasync def hello() -> dict:\n    return {}\n",
    })
    with Worker(app) as worker:
        worker.wait_status(204, timeout=10)
        start = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(10) == 0
        assert time.monotonic() - start < 5


def test_sigterm_exits_cleanly_when_stdout_is_gone():
    """A worker whose log reader went away (the pipe closed) still drains and exits 0 on SIGTERM:
    the first drain log line must not be what stops the drain."""
    import os
    import subprocess
    import sys

    from support import ENTRYPOINT, base_env, free_port

    env = {**base_env(CORE_APP), "PORT": str(free_port()), "FLASH_GRACEFUL_TIMEOUT": "5", "FLASH_DRAIN_QUIET": "0.2"}
    proc = subprocess.Popen([sys.executable, str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{env['PORT']}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the worker did not become ready"
            time.sleep(0.05)
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone: every later write to stdout fails with EPIPE
        assert httpx.post(url + "/scalars", json={"y": 1}).status_code == 200  # an access line to write
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
    from support import lb_manifest, write_app

    app = write_app(tmp_path / "app", lb_manifest(("stuck", "stuck", "POST", "/stuck"), ("stuck", "fine", "GET", "/fine")),
                    {"stuck.py": STUCK})
    env = {"FLASH_GRACEFUL_TIMEOUT": "3", "FLASH_DRAIN_QUIET": "0.2", "FLASH_METRICS": "1"}
    with Worker(app, env=env) as worker:
        worker.wait_ready()
        results: list = []
        thread = _post_in_background(worker.url + "/stuck", {}, results)
        assert httpx.get(worker.url + "/fine").json() == {"ok": True}
        deadline = time.monotonic() + 10
        while "flash_requests_in_flight 1.0" not in httpx.get(worker.url + "/metrics").text:
            assert time.monotonic() < deadline, "the stuck request never reached its handler"
            time.sleep(0.02)
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        status = worker.proc.wait(timeout=20)
        waited = time.monotonic() - sent
        thread.join(timeout=10)
    assert status == 1, worker.output()
    stopped = worker.wait_log(lambda line: line["event"] == "threads still running at exit, exiting anyway")
    assert "app-leaked" in stopped["threads"] and any(name.startswith("handler") for name in stopped["threads"])
    assert waited < 15  # bounded by the deadline, not by the threads (3 s here; a loaded machine adds some)
