"""Pure ASGI middleware around the routed app: request id, body cap, in-flight count, access log.

The body cap lives here rather than in Starlette's RequestBodyLimitMiddleware because this layer
already wraps `receive` (to know whether the body was read at all), and one wrapper per request
costs less than two: a declared Content-Length over the cap is answered before anything is read,
and a chunked body is stopped as soon as what arrived passes the cap.
"""

from __future__ import annotations

import random
import time

import structlog

from .errors import BodyTooLarge, answer, internal_error
from .health import Health, HealthState
from .logs import access_logger, request_id_var
from .metrics import Metrics, NoMetrics
from .responses import answer_response
from .types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = b"x-request-id"
_MAX_REQUEST_ID = 200
# An app may answer (404, 405, 422 on the query) without reading the body. Up to this much of an
# unread body is read and discarded before the response, so the keep-alive connection stays
# usable; a load balancer reusing it would otherwise see it closed under its next request.
_DRAIN_UNREAD_BYTES = 1024 * 1024
_log = structlog.get_logger("runtime.access")
_random_bits = random.getrandbits  # request ids need to be unique, not secret


def request_id_from(scope: Scope) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID:
            return _sane_id(value) or _fresh_id()
    return _fresh_id()


def _sane_id(value: bytes) -> str | None:
    if 0 < len(value) <= _MAX_REQUEST_ID and value.isascii():
        text = value.decode()
        if text.isprintable():
            return text
    return None


def _fresh_id() -> str:
    return "%032x" % _random_bits(128)


class RequestContext:
    """Gives every request an id, caps its body, counts it in flight and logs it once done."""

    def __init__(
        self, app: ASGIApp, health: Health, metrics: Metrics | NoMetrics, max_body_bytes: int
    ):
        self.app = app
        self.health = health
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.access = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send, self.max_body_bytes, self.health)
        request_id = exchange.request_id
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        self.health.request_started()
        self.metrics.request_started()
        start = time.perf_counter()
        try:
            if exchange.declared is not None and exchange.declared > self.max_body_bytes:
                await self._refuse_body(scope, exchange)
            else:
                await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            await self._failed(scope, exchange, exc)
        finally:
            self._finished(scope, request_id, exchange.status, time.perf_counter() - start)
            request_id_var.reset(token)

    async def _refuse_body(self, scope: Scope, exchange: _Exchange) -> None:
        """The 413 for a declared length over the cap, before any of the body is read."""
        exchange.body_done = True  # never read: the connection closes after the 413
        too_large = answer(BodyTooLarge(self.max_body_bytes), exchange.request_id)
        await answer_response(too_large)(scope, exchange.raw_receive, exchange.send)

    async def _failed(self, scope: Scope, exchange: _Exchange, exc: Exception) -> None:
        """Log what the app let escape, and answer with the 500 unless a response has started."""
        _log.exception("unhandled error", path=scope["path"])
        if exchange.status == 0:
            await answer_response(internal_error(exc, exchange.request_id))(
                scope, exchange.raw_receive, exchange.send
            )

    def _finished(self, scope: Scope, request_id: str, status: int, elapsed: float) -> None:
        self.health.request_finished()
        route = scope.get("route_path")
        self.metrics.request_finished(scope["method"], route, status, elapsed)
        self.access(request_id, scope["method"], scope["path"], route, status, elapsed)


class _Exchange:
    """One request's `receive` and `send` as the app sees them: the body capped, the response
    stamped with the request id, and whatever body the app left unread discarded before it.

    Built from the request's head in one pass over its headers: the request id (the client's when
    sane, else a fresh one), the declared Content-Length (the first one; None when absent or not a
    number) and whether the body is chunked.
    """

    __slots__ = (
        "raw_receive",
        "raw_send",
        "request_id",
        "id_header",
        "limit",
        "health",
        "declared",
        "received",
        "body_done",
        "status",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int, health: Health):
        request_id: str | None = None
        declared: int | None = None
        chunked = seen_id = seen_length = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not seen_length:
                    seen_length = True
                    declared = int(value) if value.isdigit() else None
            elif name == _REQUEST_ID:
                if not seen_id:
                    seen_id = True
                    request_id = _sane_id(value)
            elif name == b"transfer-encoding":
                chunked = True
        self.request_id = request_id = request_id or _fresh_id()
        self.id_header = (_REQUEST_ID, request_id.encode())
        self.declared = declared
        # Nothing of the body is left to read (or it is never to be read).
        self.body_done = declared is None and not chunked and scope["method"] in ("GET", "HEAD")
        self.raw_receive = receive
        self.raw_send = send
        self.limit = limit
        self.health = health
        self.received = 0
        self.status = 0  # the response's, once started

    async def receive(self) -> Message:
        message = await self.raw_receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.body_done = True  # the rest is not read: the connection closes after the 413
                raise BodyTooLarge(self.limit)
            if not message.get("more_body", False):
                self.body_done = True
        else:
            self.body_done = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if not self.body_done and (self.declared or 0) <= _DRAIN_UNREAD_BYTES:
                # The server ends the connection with the response if the body was left
                # unread; discard it first so the connection can be reused.
                self.body_done = True
                await _discard_body(self.raw_receive, _DRAIN_UNREAD_BYTES)
            headers = [*message.get("headers", ()), self.id_header]
            if self.health.state is HealthState.DRAINING:
                # Ask keep-alive clients to reconnect, so the drain can close the listener.
                headers.append((b"connection", b"close"))
            message = {**message, "headers": headers}
        await self.raw_send(message)


async def _discard_body(receive: Receive, limit: int) -> None:
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
