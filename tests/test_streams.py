"""Streams whose client goes away: the generator stops, its slot comes back, /ping stays fast.

Under both servers: Hypercorn does not fail a send once the client is gone, so a stream has to
listen for the disconnect itself; a client that leaves before the first chunk must not keep the
stream's concurrency slot.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from support import Worker, lb_manifest, write_app

STREAMS = """
import asyncio
import logging

log = logging.getLogger("streams")


async def endless():
    count = 0
    try:
        while True:  # fast: nothing awaits but the runtime's own send
            yield {"n": count}
            count += 1
    finally:
        log.warning("endless stream closed after %d items", count)


async def late():
    try:
        await asyncio.sleep(2)  # the client leaves before this first item
        yield {"late": True}
    finally:
        log.warning("late stream closed")


async def quick() -> dict:
    return {"quick": True}
"""


def _app(tmp_path):
    return write_app(
        tmp_path / "app",
        lb_manifest(
            ("streams", "endless", "GET", "/endless"),
            ("streams", "late", "GET", "/late"),
            ("streams", "quick", "GET", "/quick"),
        ),
        {"streams.py": STREAMS},
    )


def _leave_after(worker: Worker, path: str, read: int) -> None:
    """Send a request, read `read` bytes of the answer (0: none), and close the connection."""
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while len(received) < read:
            received += sock.recv(65536)


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_a_fast_stream_stops_when_its_client_leaves(tmp_path, server):
    with Worker(_app(tmp_path), env={"FLASH_SERVER": server}) as worker:
        worker.wait_ready()
        _leave_after(worker, "/endless", read=4096)
        closed = worker.wait_log(
            lambda line: line["event"].startswith("endless stream closed"), timeout=20
        )
        assert "after" in closed["event"]
        started = time.monotonic()
        assert httpx.get(worker.url + "/ping", timeout=5).status_code == 200
        assert time.monotonic() - started < 2  # the loop is not starved by a stream nobody reads


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_a_client_leaving_before_the_first_chunk_gives_its_slot_back(tmp_path, server):
    env = {
        "FLASH_SERVER": server,
        "FLASH_MAX_CONCURRENCY": "1",
        "FLASH_MAX_QUEUE_WAIT": "5",
        "FLASH_METRICS": "1",
    }
    with Worker(_app(tmp_path), env=env) as worker:
        worker.wait_ready()
        _leave_after(worker, "/late", read=0)
        worker.wait_log(lambda line: line["event"] == "late stream closed", timeout=20)
        deadline = time.monotonic() + 10
        while "flash_requests_in_flight 0.0" not in httpx.get(worker.url + "/metrics").text:
            assert time.monotonic() < deadline, "the request that left is still in flight"
            time.sleep(0.05)
        assert httpx.get(worker.url + "/quick", timeout=10).json() == {"quick": True}
