"""What the servers accept on the wire: HTTP/1.1 only, capped request heads, a deadline for a head.

Raw sockets against the real entrypoint under both servers (the platform speaks HTTP/1.1 through a
load balancer; a backend must not switch protocols or accept ambiguous framing behind it).
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from support import CORE_APP, Worker

SERVERS = ["hypercorn", "uvicorn"]


@pytest.fixture(scope="module", params=SERVERS)
def worker(request):
    env = {
        "FLASH_SERVER": request.param,
        "FLASH_HEADER_TIMEOUT": "1",
        "FLASH_BODY_TIMEOUT": "1",
        "FLASH_MAX_BODY_BYTES": "1048576",
        "FLASH_MAX_HEADER_BYTES": "16384",
        "FLASH_MAX_HEADERS": "50",
    }
    with Worker(CORE_APP, env=env) as started:
        yield started.wait_ready()


def exchange(worker: Worker, data: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Send `data`, read until the server closes or goes quiet; (what came back, whether it closed)."""
    with socket.create_connection(("127.0.0.1", worker.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        sock.settimeout(1.5)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return received, False
            except ConnectionResetError:
                return received, True
            if not chunk:
                return received, True
            received += chunk


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_an_h2c_upgrade_is_not_taken(worker):
    answer, _ = exchange(
        worker,
        b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    assert (
        answer.startswith(b"HTTP/1.1 200")
        and b"upgrade" not in answer.lower().split(b"\r\n\r\n")[0]
    )


@pytest.mark.parametrize("upgrade", [b"h2c", b"something"])
def test_the_body_of_an_upgrade_request_is_never_read_as_a_request(worker, upgrade):
    """httptools frames an upgrade request as bodyless: uvicorn, not upgrading, parsed a body that
    came in a later packet as the next request (a proxy forwards it as this request's body)."""
    hidden = b"GET /items/666666 HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(
            b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: Upgrade\r\nUpgrade: %s\r\nContent-Length: %d\r\n\r\n"
            % (upgrade, len(hidden))
        )
        time.sleep(0.3)  # the body in a packet of its own
        sock.sendall(hidden)
        sock.settimeout(10)
        answer = b""
        while b"666666" not in answer:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            answer += chunk
            sock.settimeout(1.5)  # an answer has come: a second one would follow at once
        # Hypercorn reads it as the body (422, not JSON); uvicorn refuses it (400 and a close).
        assert b"666666" not in answer and status_of(answer) in (400, 422), answer


def test_the_http2_preface_is_refused_and_the_connection_closed(worker):
    answer, closed = exchange(worker, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert status_of(answer) == 400 and closed


def test_content_length_with_transfer_encoding_is_refused_and_the_connection_closed(worker):
    answer, closed = exchange(
        worker,
        b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b"7\r\n{\"y\":1}\r\n0\r\n\r\n",
    )
    assert status_of(answer) == 400 and closed


def test_expect_continue_over_the_body_cap_gets_413_without_100_continue(worker):
    answer, _ = exchange(
        worker,
        b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
        b"Expect: 100-continue\r\nContent-Type: application/json\r\n\r\n",
    )
    assert (
        answer.startswith(b"HTTP/1.1 413")
        and b"100 Continue" not in answer
        and b" 100 " not in answer
    )
    assert body_of(answer)["limit"] == 1048576


@pytest.mark.parametrize(
    "head",
    [
        b"X-Big: " + b"a" * 20 * 1024 + b"\r\n",  # over FLASH_MAX_HEADER_BYTES, in one packet
        b"".join(b"X-H%d: v\r\n" % i for i in range(60)),  # over FLASH_MAX_HEADERS
        b"X-Big: " + b"a" * 1024 * 1024 + b"\r\n",  # far over: h11 / httptools buffers
    ],
    ids=["20KiB", "60-headers", "1MiB"],
)
def test_request_heads_over_the_caps_get_431_and_a_close(worker, head):
    answer, closed = exchange(worker, b"GET /ping HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
    assert status_of(answer) == 431 and closed


def test_heads_within_the_caps_are_served(worker):
    head = (
        b"X-Big: " + b"a" * 12 * 1024 + b"\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(40))
    )
    answer, _ = exchange(worker, b"GET /ping HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_connection_that_never_completes_its_head_is_closed(worker):
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        sock.settimeout(15)
        assert sock.recv(1024) == b""  # closed by the server, nothing answered
        assert time.monotonic() - started < 12  # FLASH_HEADER_TIMEOUT (1 s), not keep-alive's 600 s


def test_an_idle_keep_alive_connection_is_not_cut_by_the_head_deadline(worker):
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        deadline = (
            time.monotonic() + 2.5
        )  # longer than FLASH_HEADER_TIMEOUT, shorter than keep-alive
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                assert sock.recv(4096) != b"", "the server closed an idle keep-alive connection"
            except TimeoutError:
                pass
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "data",
    [
        b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"y\": 1",
        b"POST /scalars HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b"7\n{\"y\":1}\n0\n\n",  # bare-LF chunk lines: Hypercorn waited for a CRLF forever
    ],
    ids=["stalled", "bare-LF-chunks"],
)
def test_a_body_that_stops_arriving_ends_the_connection(worker, data):
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(15)
        started = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert time.monotonic() - started < 12  # FLASH_BODY_TIMEOUT (1 s), not forever
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4")


@pytest.mark.parametrize("server", SERVERS)
def test_a_bare_lf_chunk_size_line_gets_400_and_a_close_at_once(server):
    """Answered when it arrives, not when FLASH_BODY_TIMEOUT (60 s here) ends the connection."""
    with Worker(CORE_APP, env={"FLASH_SERVER": server, "FLASH_BODY_TIMEOUT": "60"}) as started:
        started.wait_ready()
        with socket.create_connection(("127.0.0.1", started.port), timeout=10) as sock:
            sock.sendall(
                b"POST /scalars HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: application/json\r\n\r\n7\n{\"y\":1}\n0\n\n"
            )
            answer = b""
            while chunk := sock.recv(4096):  # a TimeoutError (10 s) fails the test
                answer += chunk
        assert status_of(answer) == 400
        started.stop()  # the app's side of the lost body has ended and logged what it logs
        assert not [line for line in started.logs() if line["level"] in ("error", "critical")], (
            started.output()
        )


@pytest.mark.parametrize("server", SERVERS)
def test_a_connection_the_client_closed_gives_back_its_file_descriptor(server):
    """Hypercorn closed such a connection only when its keep-alive timer ended (600 s by default):
    a client opening and closing connections could use up the worker's file descriptors."""
    with Worker(CORE_APP, env={"FLASH_SERVER": server}) as started:
        started.wait_ready()
        open_fds = lambda: len(os.listdir(f"/proc/{started.proc.pid}/fd"))  # noqa: E731
        baseline = open_fds()
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", started.port), timeout=10) as sock:
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10
        while open_fds() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_fds() <= baseline, (
            f"{open_fds() - baseline} connections still hold a descriptor"
        )


def test_a_slow_but_steady_body_is_served(worker):
    body = b'{"y": 5}'
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(
            b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        for index in range(
            len(body)
        ):  # a byte every 0.3 s: 2.4 s in all, over FLASH_BODY_TIMEOUT (1 s)
            time.sleep(0.3)
            sock.sendall(body[index : index + 1])
        sock.settimeout(10)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("server", SERVERS)
def test_a_connection_reset_by_its_client_is_let_go(server):
    """uvicorn kept a reset connection (its protocol and last request) until its keep-alive timer
    ended, 600 s later: a proxy that resets idle connections made the worker grow without end."""
    import struct

    def request_then_reset(count: int) -> None:
        head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 16 * 1024 + b"\r\n\r\n"
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", started.port), timeout=10)
            sock.sendall(head)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, not a FIN

    with Worker(CORE_APP, env={"FLASH_SERVER": server}) as started:
        started.wait_ready()
        request_then_reset(100)  # allocator arenas and caches settle
        before = rss_kib(started.proc.pid)
        request_then_reset(1000)  # kept, they would hold over 5 MiB
        growth = rss_kib(started.proc.pid) - before
        assert growth < 2048, (
            f"RSS grew {growth} KiB"
        )  # with them let go: a few hundred KiB at most


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
