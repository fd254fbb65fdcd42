"""Limits over TCP: concurrency cap and pending line, timeouts, body cap, slow and idle clients."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time

import httpx
import pytest
from support import CORE_APP, Worker, hold_app, marks, post_in_background, read_response, wait_marks


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _concurrently(url: str, count: int, json: dict) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.post(url, json=json) for _ in range(count)))


def test_over_the_cap_exactly_the_expected_503s_each_with_retry_after(tmp_path):
    release = tmp_path / "release"
    env = {
        "FLASH_MAX_CONCURRENCY": "2",
        "FLASH_MAX_PENDING": "3",
        "FLASH_METRICS": "1",
        "HOLD_RELEASE": str(release),
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        held = [post_in_background(worker.url + "/hold") for _ in range(5)]
        worker.wait_gauges(in_flight=5, pending=3)  # 2 running (held), 3 waiting for a slot
        wait_marks(release, "/hold", 2)
        # /ping does not wait behind the cap or the pending line.
        assert httpx.get(worker.url + "/ping", timeout=10).status_code == 200
        # The line is full: every further request is refused at once, whatever its handler.
        for path in ("/hold", "/quick-async", "/quick", "/hold", "/quick-async"):
            refused = httpx.post(worker.url + path, json={}, timeout=30)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json() == {"detail": "The worker is at capacity; retry shortly"}
        assert (
            marks(release, "/hold") == 2
        )  # none of the waiting or refused ones reached its handler
        release.touch()
        for thread, results in held:
            thread.join(30)
            assert [(r.status_code, r.json()) for r in results] == [(200, {"held": True})]


def test_async_handler_past_the_timeout_gets_504_and_is_cancelled(tmp_path):
    # The handler is never released: only the timeout can answer, and only a cancellation ends it.
    never = tmp_path / "never"
    env = {"FLASH_REQUEST_TIMEOUT": "1", "HOLD_RELEASE": str(never)}
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        start = time.monotonic()
        r = httpx.post(worker.url + "/hold", json={}, timeout=60)
        elapsed = time.monotonic() - start
        assert r.status_code == 504
        assert r.json() == {"detail": "The handler did not finish within 1 seconds"}
        assert elapsed >= 1.0  # not before the deadline (a lower bound: load only makes it later)
        assert r.headers["x-request-id"]
        wait_marks(never, "/hold", what="cancelled")


def test_sync_handler_timeout_keeps_its_slot_until_the_thread_ends(tmp_path):
    release = tmp_path / "release"
    env = {
        "FLASH_REQUEST_TIMEOUT": "1",
        "FLASH_MAX_CONCURRENCY": "1",
        "FLASH_MAX_PENDING": "5",
        "FLASH_METRICS": "1",
        "HOLD_RELEASE": str(release),
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        r = httpx.post(worker.url + "/hang", json={}, timeout=60)
        assert r.status_code == 504
        # The thread still runs: the one slot is still taken, so the next request waits for it...
        thread, second = post_in_background(worker.url + "/quick-async")
        worker.wait_gauges(in_flight=1, pending=1)
        assert second == []
        # ...until the thread returns and gives the slot back.
        release.touch()
        thread.join(30)
        assert [(r.status_code, r.json()) for r in second] == [(200, {"quick": "async"})]


def test_body_over_the_cap_by_content_length_is_413_without_reading_it():
    limit = 1024 * 1024
    with Worker(CORE_APP, env={"FLASH_MAX_BODY_BYTES": str(limit)}) as worker:
        worker.wait_ready()
        before = rss_kib(worker.proc.pid)
        with socket.create_connection(("127.0.0.1", worker.port)) as sock:
            # Declare 200 MB and send only the headers: the answer must come without the body.
            sock.sendall(
                b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 209715200\r\n\r\n"
            )
            sock.settimeout(5)
            status, _, payload = read_response(sock)
        assert status == 413
        assert f'"limit":{limit}'.encode() in payload
        within = httpx.post(worker.url + "/scalars", content=b'{"y": 1}' + b" " * 1000)
        assert within.status_code == 200
        assert rss_kib(worker.proc.pid) - before < 20 * 1024


def test_chunked_body_over_the_cap_is_413_and_memory_does_not_grow_by_its_size():
    limit = 1024 * 1024
    with Worker(CORE_APP, env={"FLASH_MAX_BODY_BYTES": str(limit)}) as worker:
        worker.wait_ready()
        before = rss_kib(worker.proc.pid)
        chunk = b"x" * 65536
        sent = 0
        with socket.create_connection(("127.0.0.1", worker.port)) as sock:
            sock.sendall(
                b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            try:
                for _ in range(1600):  # up to 100 MB, unless the server stops us first
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            sock.settimeout(5)
            try:
                head = sock.recv(65536).decode()
            except ConnectionResetError:
                head = ""
        if head:  # the response may be lost to a reset when the client kept writing
            assert head.startswith("HTTP/1.1 413"), head
        assert sent < 100 * 1024 * 1024, "the server read the whole chunked body"
        grew = rss_kib(worker.proc.pid) - before
        assert grew < 20 * 1024, f"RSS grew by {grew} KiB"

        # The 413 as a client library sees it:
        def body():
            for _ in range(40):
                yield chunk

        r = httpx.post(worker.url + "/scalars", content=body(), timeout=10)
        assert r.status_code == 413 and r.json()["limit"] == limit


def test_ping_answers_while_40_def_handlers_are_stuck_and_200_clients_wait(tmp_path):
    release = tmp_path / "release"
    env = {"FLASH_SYNC_THREADS": "40", "FLASH_METRICS": "1", "HOLD_RELEASE": str(release)}
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        results: list = []
        runner = threading.Thread(
            target=lambda: results.extend(asyncio.run(_concurrently(worker.url + "/hang", 240, {})))
        )
        runner.start()
        worker.wait_gauges(in_flight=240, timeout=60)
        wait_marks(release, "/hang", 40)  # every thread of the pool is held
        for _ in range(15):
            assert httpx.get(worker.url + "/ping", timeout=10).status_code == 200
        assert results == [] and marks(release, "/hang") == 40
        release.touch()
        runner.join(120)
        assert sorted({r.status_code for r in results}) == [200] and len(results) == 240
        assert len({r.json()["thread"] for r in results}) == 40


def test_idle_keepalive_connections_and_a_slow_body_client_do_not_starve_the_worker():
    with Worker(CORE_APP) as worker:
        worker.wait_ready()
        idle = []
        try:
            for _ in range(500):
                sock = socket.create_connection(("127.0.0.1", worker.port))
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                idle.append(sock)
            for sock in idle:
                sock.settimeout(5)
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            slow = socket.create_connection(("127.0.0.1", worker.port))
            slow.sendall(b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            stop = threading.Event()

            def trickle() -> None:
                while not stop.wait(1.0):
                    try:
                        slow.sendall(b" ")
                    except OSError:
                        return

            trickler = threading.Thread(target=trickle)
            trickler.start()
            try:
                for _ in range(10):
                    assert httpx.get(worker.url + "/ping", timeout=10).status_code == 200
                    r = httpx.post(worker.url + "/scalars", json={"y": 2}, timeout=10)
                    assert r.status_code == 200
            finally:
                stop.set()
                trickler.join()
                slow.close()
        finally:
            for sock in idle:
                sock.close()


async def _steady_load(url: str, stop: threading.Event, workers: int, outcome: dict) -> None:
    async def one(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                r = await client.post(url, json={"y": 1})
            except (httpx.ConnectError, httpx.ConnectTimeout):
                outcome["refused"] += 1  # the listener had closed: never accepted
                await asyncio.sleep(0.01)
                continue
            except httpx.HTTPError as exc:
                outcome["lost"].append(repr(exc))
                continue
            if r.status_code == 200 and r.json() == {
                "y": 1,
                "ratio": 1.5,
                "name": "anon",
                "flag": False,
            }:
                outcome["ok"] += 1
                if r.headers.get("connection") == "close":
                    outcome["while_draining"] += 1
            else:
                outcome["lost"].append(f"{r.status_code} {r.text[:100]}")

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(one(client) for _ in range(workers)))


def test_sigterm_under_steady_load_loses_no_accepted_request():
    env = {"FLASH_GRACEFUL_TIMEOUT": "4", "FLASH_DRAIN_QUIET": "0.5"}
    with Worker(CORE_APP, env=env) as worker:
        worker.wait_ready()
        outcome: dict = {"ok": 0, "while_draining": 0, "refused": 0, "lost": []}
        stop = threading.Event()
        loader = threading.Thread(
            target=lambda: asyncio.run(_steady_load(worker.url + "/scalars", stop, 16, outcome))
        )
        loader.start()
        try:
            deadline = time.monotonic() + 60
            while outcome["ok"] < 50:  # a steady load before the signal
                assert time.monotonic() < deadline and not outcome["lost"], outcome
                time.sleep(0.02)
            worker.signal(signal.SIGTERM)
            code = worker.wait_exit(30)
        finally:
            stop.set()
            loader.join(30)
        served = [
            line
            for line in worker.logs()
            if line.get("event") == "request" and line["status"] == 200
        ]
        print(
            f"steady load: ok={outcome['ok']} (while draining {outcome['while_draining']}) "
            f"refused={outcome['refused']} lost={len(outcome['lost'])}"
        )
        assert code == 0
        assert outcome["while_draining"] > 0  # requests arriving while draining were served
        assert outcome["lost"] == []
        assert (
            len(served) == outcome["ok"]
        )  # every response the server completed reached its client


def test_metrics_parse_and_count_the_requests_sent():
    from prometheus_client.parser import text_string_to_metric_families

    with Worker(CORE_APP, env={"FLASH_METRICS": "1"}) as worker:
        worker.wait_ready()
        for _ in range(7):
            httpx.post(worker.url + "/scalars", json={"y": 1})
        for _ in range(3):
            httpx.post(worker.url + "/scalars", json={})
        httpx.get(worker.url + "/nowhere")
        text = httpx.get(worker.url + "/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        counts = {
            (s.labels["route"], s.labels["status"]): s.value
            for s in families["flash_requests"].samples
            if s.name == "flash_requests_total"
        }
        assert counts[("/scalars", "200")] == 7
        assert counts[("/scalars", "422")] == 3
        assert counts[("<unmatched>", "404")] == 1
        histogram = {
            s.labels["status"]: s.value
            for s in families["flash_request_duration_seconds"].samples
            if s.name.endswith("_count") and s.labels["route"] == "/scalars"
        }
        assert histogram == {"200": 7, "422": 3}
        assert {s.labels["phase"] for s in families["flash_boot_phase_seconds"].samples} >= {
            "manifest",
            "import",
        }
        assert "flash_requests_in_flight" in families and "flash_requests_pending" in families


@pytest.mark.parametrize(
    "mode, main, health", [("health", 404, 200), ("1", 200, 200), ("0", 404, 404)]
)
def test_metrics_placement_follows_the_setting(mode, main, health):
    from support import free_port

    env = {"FLASH_METRICS": mode, "PORT_HEALTH": str(free_port())}
    with Worker(CORE_APP, env=env) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/metrics").status_code == main
        assert httpx.get(worker.health_url + "/metrics").status_code == health
        # The health listener serves /ping and metrics only.
        assert httpx.get(worker.health_url + "/ping").status_code == 200
        assert httpx.post(worker.health_url + "/scalars", json={"y": 1}).status_code == 404
        assert httpx.post(worker.url + "/scalars", json={"y": 1}).status_code == 200


def test_a_pool_full_of_timed_out_threads_turns_ping_defunct_and_refuses_at_once(tmp_path):
    """Every handler thread stuck past its deadline: /ping says 503 defunct (the platform replaces
    the worker), `def` routes answer 503 at once instead of waiting behind threads that may never
    return, async routes still run, and all of it recovers when the threads return."""
    release = tmp_path / "release"
    env = {"FLASH_SYNC_THREADS": "2", "FLASH_REQUEST_TIMEOUT": "1", "HOLD_RELEASE": str(release)}
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        stuck = asyncio.run(_concurrently(worker.url + "/hang", 2, {}))
        assert [r.status_code for r in stuck] == [504, 504]
        ping = httpx.get(worker.url + "/ping", timeout=30)
        assert (ping.status_code, ping.json()) == (503, {"status": "defunct"})
        refused = httpx.post(worker.url + "/quick", json={}, timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert httpx.post(worker.url + "/quick-async", json={}, timeout=30).json() == {
            "quick": "async"
        }
        worker.wait_log(lambda line: line["event"].startswith("capacity lost"))
        release.touch()
        worker.wait_status(200, timeout=15)
        assert httpx.post(worker.url + "/quick", json={}, timeout=30).json() == {"quick": True}
        worker.wait_log(lambda line: line["event"].startswith("capacity back"))


def test_every_slot_held_past_its_deadline_turns_ping_defunct(tmp_path):
    release = tmp_path / "release"
    env = {
        "FLASH_MAX_CONCURRENCY": "1",
        "FLASH_REQUEST_TIMEOUT": "1",
        "FLASH_MAX_QUEUE_WAIT": "0.5",
        "HOLD_RELEASE": str(release),
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        assert httpx.post(worker.url + "/hang", json={}, timeout=10).status_code == 504
        ping = httpx.get(worker.url + "/ping", timeout=30)
        assert (ping.status_code, ping.json()) == (503, {"status": "defunct"})
        for path in (
            "/quick",
            "/quick-async",
        ):  # the slot may come back: they wait their bounded time
            refused = httpx.post(worker.url + path, json={}, timeout=10)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        release.touch()
        worker.wait_status(200, timeout=15)
        assert httpx.post(worker.url + "/quick-async", json={}, timeout=30).status_code == 200


def test_waiting_in_line_is_bounded(tmp_path):
    """FLASH_MAX_QUEUE_WAIT: a request that found every slot busy waits that long, then gets 503."""
    release = tmp_path / "release"
    env = {
        "FLASH_MAX_CONCURRENCY": "1",
        "FLASH_MAX_QUEUE_WAIT": "0.5",
        "HOLD_RELEASE": str(release),
        "FLASH_METRICS": "1",
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        holder, results = post_in_background(worker.url + "/hold")
        wait_marks(release, "/hold")  # the first request took the slot
        waited = httpx.post(worker.url + "/quick-async", json={}, timeout=10)
        assert waited.status_code == 503 and waited.headers["retry-after"] == "1"
        assert httpx.get(worker.url + "/ping", timeout=30).status_code == 200  # busy, not defunct
        release.touch()
        holder.join(timeout=20)
        assert [r.json() for r in results] == [{"held": True}]
