"""Pure ASGI middleware around the routed app: request id, body cap, in-flight count, access log.

The body cap lives here rather than in Starlette's RequestBodyLimitMiddleware because this layer
already wraps `receive` (to know whether the body was read at all), and one wrapper per request
costs less than two: a declared Content-Length over the cap is answered before anything is read,
and a chunked body is stopped as soon as what arrived passes the cap.
"""

from __future__ import annotations

import random
import time
from typing import Any

import structlog

from .errors import BodyTooLarge
from .health import Health, HealthState
from .logs import access_logger, request_id_var
from .metrics import Metrics, NoMetrics
from .responses import encode_json
from .routing import too_large_body
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


async def send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete JSON response (or an empty one for `body is None`)."""
    payload = b"" if body is None else encode_json(body)
    head = [(b"content-length", str(len(payload)).encode()), *headers]
    if body is not None:
        head.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": payload})


class RequestContext:
    """Gives every request an id, caps its body, counts it in flight and logs it once done."""

    def __init__(self, app: ASGIApp, health: Health, metrics: Metrics | NoMetrics, max_body_bytes: int):
        self.app = app
        self.health = health
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.access = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One pass over the headers: the client's request id, the declared length, chunking.
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
        if request_id is None:
            request_id = _fresh_id()
        scope.setdefault("state", {})["request_id"] = request_id
        limit = self.max_body_bytes
        id_header = (_REQUEST_ID, request_id.encode())
        health = self.health
        status = 0
        received = 0
        body_done = declared is None and not chunked and scope["method"] in ("GET", "HEAD")

        async def receive_capped() -> Message:
            nonlocal body_done, received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    body_done = True  # the rest is not read: the connection closes after the 413
                    raise BodyTooLarge(limit)
                if not message.get("more_body", False):
                    body_done = True
            else:
                body_done = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, body_done
            if message["type"] == "http.response.start":
                status = message["status"]
                if not body_done and (declared or 0) <= _DRAIN_UNREAD_BYTES:
                    # The server ends the connection with the response if the body was left
                    # unread; discard it first so the connection can be reused.
                    body_done = True
                    await _discard_body(receive, _DRAIN_UNREAD_BYTES)
                headers = [*message.get("headers", ()), id_header]
                if health.state is HealthState.DRAINING:
                    # Ask keep-alive clients to reconnect, so the drain can close the listener.
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        token = request_id_var.set(request_id)
        health.request_started()
        self.metrics.request_started()
        start = time.perf_counter()
        try:
            if declared is not None and declared > limit:
                body_done = True  # never read: the connection closes after the 413
                await send_json(send_with_id, 413, too_large_body(limit))
            else:
                await self.app(scope, receive_capped, send_with_id)
        except Exception:
            _log.exception("unhandled error", path=scope["path"])
            if status == 0:
                await send_json(send_with_id, 500, {"detail": "Internal Server Error", "request_id": request_id})
        finally:
            elapsed = time.perf_counter() - start
            health.request_finished()
            route = scope.get("route_path")
            self.metrics.request_finished(scope["method"], route, status, elapsed)
            self.access(request_id, scope["method"], scope["path"], route, status, elapsed)
            request_id_var.reset(token)


async def _discard_body(receive: Receive, limit: int) -> None:
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return

