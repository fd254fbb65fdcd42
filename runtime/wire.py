"""HTTP/1.1 as the platform speaks it, and nothing more: what the servers accept on the wire.

The Runpod load balancer speaks HTTP/1.1 to the worker. Both servers accept more than that, and
less strictly than a backend behind a proxy should:

- request heads: a cap on their total size and header count under both servers (Hypercorn caps a
  head only when it spans several reads; httptools never does, and buffers a header streamed
  without end), and a deadline for a connection to send a complete head;
- request bodies: a connection whose body stops arriving for `body_timeout` seconds is closed;
  a chunked body whose chunk-size line ends in a bare LF gets 400 and a close at once (h11 waited
  for a CRLF that never came; httptools refuses it itself);
- connections: one whose client has closed it (Hypercorn) or reset it (uvicorn) is let go at once;
  both servers kept it, with its socket or its last request, until the keep-alive timer ended;
- uvicorn: a request asking for an upgrade other than WebSocket, with a body, gets 400 and a close
  (httptools frames it as bodyless and uvicorn parsed the body as the next request);
- Hypercorn: an `Upgrade: h2c` request switched the connection to HTTP/2 (a proxy then tunnels
  it, and the requests inside reach the app without the proxy's forwarding headers) and the
  HTTP/2 preface was answered in HTTP/2: the upgrade is ignored (the request is served over
  HTTP/1.1, as RFC 9110 allows) and the preface gets 400 and a close; a request with both
  Content-Length and Transfer-Encoding gets 400 and a close (RFC 9112 section 6.1: such a message
  may be a smuggling attempt); an `Expect: 100-continue` request whose Content-Length is over the
  body cap gets its 413 without a `100 Continue` first.

Hypercorn has no setting for these and no hook but its HTTP/1.1 protocol class, so
`install_hypercorn_guard` puts a subclass of that class where Hypercorn looks it up (the runtime
pins Hypercorn below 0.19 for this reason; tests/test_wire.py fails if the hook moves). uvicorn
takes an HTTP protocol class as a setting (`http=`), and a WebSocket one (`ws=`): `websocket_protocol`
keeps a refused upgrade out of the error log.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson


@dataclass(frozen=True)
class WireLimits:
    """What one request head may be, and how long a client may take to send it."""

    max_header_bytes: int
    max_headers: int
    head_timeout: float
    max_body_bytes: int
    body_timeout: float = 60.0


class _Deadline:
    """One pending deadline on the running loop: `start` (re)arms it, `cancel` disarms it."""

    def __init__(self, seconds: float, expire: Any):
        self.seconds = seconds
        self.expire = expire
        self.handle: asyncio.TimerHandle | None = None

    @property
    def armed(self) -> bool:
        return self.handle is not None

    def start(self) -> None:
        self.cancel()
        self.handle = asyncio.get_running_loop().call_later(self.seconds, self._fire)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        self.expire()


def refusal(status: int, detail: str, **extra: Any) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and JSON body of an answer given before the app sees the request."""
    body = orjson.dumps({"detail": detail, **extra})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


HEAD_SLACK = 8192  # bytes of request line and framing on top of the headers' own cap
_LINGER = 2.0  # seconds a refused connection is read and discarded before it is closed


def head_problem(headers: list[tuple[bytes, bytes]], limits: WireLimits) -> tuple[int, str] | None:
    """A parsed head over the caps: (status, detail), or None."""
    if len(headers) > limits.max_headers:
        return 431, f"More than {limits.max_headers} request headers"
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 4  # ": " and CRLF, as on the wire
    if size > limits.max_header_bytes:
        return 431, f"Request headers exceed {limits.max_header_bytes} bytes"
    return None


def install_hypercorn_guard(limits: WireLimits) -> None:
    """Make Hypercorn's connections use the guarded HTTP/1.1 protocol."""
    import hypercorn.protocol as protocols

    base: type = protocols.H11Protocol
    if getattr(base, "wire_limits", None) is not None:
        base = base.__mro__[1]  # already installed (a second server in one process, tests)
    protocols.H11Protocol = _guarded_h11(base, limits)  # type: ignore[misc, assignment]


def _guarded_h11(base: type, limits: WireLimits) -> type:
    import h11

    class GuardedH11Protocol(base):
        wire_limits = limits

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._refused = False
            self._head = _Deadline(limits.head_timeout, lambda: self._close_while(h11.IDLE))
            self._body = _Deadline(limits.body_timeout, lambda: self._close_while(h11.SEND_BODY))

        async def handle(self, event: Any) -> None:
            from hypercorn.events import Closed, RawData

            if (
                isinstance(event, RawData)
                and not self._head.armed
                and self.connection.their_state is h11.IDLE
            ):
                self._head.start()
            elif isinstance(event, Closed):
                self._head.cancel()
                self._body.cancel()
            await super().handle(event)
            if isinstance(event, Closed):
                # The client is gone (or the connection failed). Hypercorn lets the connection's
                # task end only once its keep-alive timer does, and closes the socket after that:
                # every connection a client closed held its file descriptor, in CLOSE-WAIT, for
                # FLASH_KEEP_ALIVE_TIMEOUT (600 s). Closing our side now ends the timer with it.
                await self.send(Closed())
            elif isinstance(event, RawData):
                # The stall deadline runs while a body is still arriving: only a body that did not
                # come with its head ever arms it.
                if self.connection.their_state is h11.SEND_BODY and not self._refused:
                    self._body.start()
                else:
                    self._body.cancel()

        def _close_while(self, state: Any) -> None:
            """The client is still where the deadline found it (no complete head, or a body stopped)."""
            from hypercorn.events import Closed

            if self.connection.their_state is state:
                self.task_group.spawn(self.send, Closed())

        async def _check_protocol(self, event: Any) -> None:
            self._head.cancel()
            problem = _request_problem(event, limits)
            if problem is not None:
                status, detail, extra = problem
                await self._refuse(status, detail, **extra)
            # Anything else, `Upgrade: h2c` included, is served as the HTTP/1.1 request it is.

        async def _create_stream(self, request: Any) -> None:
            if self._refused:
                return
            await super()._create_stream(request)

        async def _refuse(self, status: int, detail: str, **extra: Any) -> None:
            from hypercorn.events import Closed

            self._refused = True
            headers, body = refusal(status, detail, **extra)
            await self._send_h11_event(h11.Response(status_code=status, headers=headers))
            await self._send_h11_event(h11.Data(data=body))
            await self._send_h11_event(h11.EndOfMessage())
            await self.send(Closed())

        async def _handle_events(self) -> None:
            if self._refused:
                return
            await super()._handle_events()
            if _bare_lf_chunk_line(self.connection):
                # h11 looks for the CRLF that ends a chunk-size line and would wait for it until the
                # body deadline. Feed it that CRLF: the line it then reads is no chunk size, so h11
                # raises its protocol error and Hypercorn answers 400 and closes, as for any other
                # malformed chunk (h11 marks the client's side failed, so the app's own answer to
                # the lost body is dropped rather than raised).
                self.connection.receive_data(b"\r\n")
                await super()._handle_events()

        async def _maybe_recycle(self) -> None:
            await super()._maybe_recycle()
            self._head.cancel()

    return GuardedH11Protocol


def _bare_lf_chunk_line(connection: Any) -> bool:
    """Whether h11 waits for a chunk-size line that already ended in a bare LF (RFC 9112 section
    7.1: the line ends in CRLF). h11 keeps its reader and buffer private; should they move, this
    answers False and the body deadline closes the connection as before (tests/test_wire.py fails)."""
    reader = getattr(connection, "_reader", None)
    buffer = getattr(connection, "_receive_buffer", None)
    if buffer is None or type(reader).__name__ != "ChunkedReader":
        return False
    if (
        getattr(reader, "_bytes_in_chunk", 1)
        or getattr(reader, "_bytes_to_discard", b"x")
        or getattr(reader, "_reading_trailer", True)
    ):
        return False  # inside a chunk's data or its CRLF, or in the trailer (which h11 reads LF-tolerant)
    pending = bytes(buffer)
    end = pending.find(b"\n")
    return end != -1 and pending[end - 1 : end] != b"\r"


def _request_problem(request: Any, limits: WireLimits) -> tuple[int, str, dict[str, Any]] | None:
    if request.method == b"PRI" and request.target == b"*":
        return 400, "HTTP/2 is not served here; speak HTTP/1.1", {}
    headers = list(request.headers)
    problem = head_problem(headers, limits)
    if problem is not None:
        return (*problem, {})
    names = {name for name, _ in headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        return 400, "A request may not carry both Content-Length and Transfer-Encoding", {}
    expects = any(name == b"expect" and value.lower() == b"100-continue" for name, value in headers)
    if expects:
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > limits.max_body_bytes:
                return (
                    413,
                    f"Request body exceeds the limit of {limits.max_body_bytes} bytes",
                    {"limit": limits.max_body_bytes},
                )
    return None


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (
            name == b"content-length" and value.strip() not in (b"0", b"")
        ):
            return True
    return False


def guarded_httptools_protocol(limits: WireLimits) -> type:
    """uvicorn's httptools protocol with the head caps and deadline (its `http=` setting)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = True  # bytes received belong to a request head not yet complete
            self._in_body = False  # the head is in, the body is still arriving
            self._head_bytes = 0
            self._refused = False
            self._head = _Deadline(limits.head_timeout, lambda: self._close_if_still(head=True))
            self._body = _Deadline(limits.body_timeout, lambda: self._close_if_still(head=False))

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_head:
                self._head_bytes += len(data)
                if not self._head.armed:
                    self._head.start()
            super().data_received(data)
            # httptools buffers a head without bound: refuse once it outgrows the cap unfinished.
            if (
                self._in_head
                and not self._refused
                and self._head_bytes > limits.max_header_bytes + HEAD_SLACK
            ):
                self._refuse(431, f"Request headers exceed {limits.max_header_bytes} bytes")
            if self._in_body and not self._refused:
                self._body.start()  # the body is still arriving: (re)start its stall deadline
            else:
                self._body.cancel()

        def _close_if_still(self, head: bool) -> None:
            if (self._in_head if head else self._in_body) and not self._refused:
                self._refused = True
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._in_body = True
            self._head.cancel()
            problem = head_problem(self.headers, limits)
            if problem is not None:
                self._refuse(*problem)
                return
            if (
                self.parser.should_upgrade()
                and not self._should_upgrade()
                and _declares_body(self.headers)
            ):
                # httptools frames an upgrade request as bodyless and uvicorn, not upgrading, reads
                # on: the body's bytes would be parsed as the next request (a proxy forwards them
                # as this one's body). Refuse what cannot be framed; without a body it is served.
                self._refuse(400, "A request asking for a protocol upgrade may not carry a body")
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._in_body = False
            if not self._refused:
                super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._in_head = True
            self._head_bytes = 0

        def connection_lost(self, exc: Exception | None) -> None:
            self._head.cancel()
            self._body.cancel()
            super().connection_lost(exc)
            # uvicorn cancels its keep-alive timer only when the connection closed cleanly: after a
            # reset (HAProxy closes idle connections so) the timer kept the protocol, its transport
            # and its last request alive for FLASH_KEEP_ALIVE_TIMEOUT (600 s).
            self._unset_keepalive_if_required()

        def _refuse(self, status: int, detail: str) -> None:
            self._refused = True
            self._head.cancel()
            self._body.cancel()
            headers, body = refusal(status, detail)
            reason = HTTPStatus(status).phrase.encode()
            head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            self.transport.write(b"HTTP/1.1 %d %s\r\n%s\r\n%s" % (status, reason, head, body))
            # Closing with the client's bytes still unread would reset the connection and lose the
            # answer: end our side, discard what still arrives (data_received), close a moment later.
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(_LINGER, self.transport.close)

    return GuardedHttpToolsProtocol


def websocket_protocol() -> type | str:
    """uvicorn's WebSocket protocol (its `ws=` setting), quiet about a refused upgrade.

    The app refuses every upgrade with a 404 through the ASGI denial-response extension. uvicorn's
    sans-I/O and wsproto protocols send that answer and then, since no handshake completed, log
    "ASGI callable returned without completing handshake." at error level for a request that was
    answered as intended. Here the end of a denial response counts as the handshake's end.
    """
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    if AutoWebSocketsProtocol is None or AutoWebSocketsProtocol.__name__ not in (
        "WebSocketsSansIOProtocol",
        "WSProtocol",
    ):
        return "auto"  # none installed, or the legacy protocol, which logs nothing here

    class QuietDenialWebSocketProtocol(AutoWebSocketsProtocol):  # type: ignore[misc, valid-type]
        async def send(self, message: Any) -> None:
            await super().send(message)
            if message["type"] == "websocket.http.response.body" and not message.get(
                "more_body", False
            ):
                self.handshake_complete = True

    return QuietDenialWebSocketProtocol
