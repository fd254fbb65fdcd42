"""Pure ASGI middleware around the routed app: request id, body cap, in-flight count, access log."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog

from .health import Health, HealthState
from .metrics import Metrics
from .responses import encode_json
from .types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = b"x-request-id"
# An app may answer (404, 405, 422 on the query) without reading the body. Up to this much of an
# unread body is read and discarded before the response, so the keep-alive connection stays
# usable; a load balancer reusing it would otherwise see it closed under its next request.
_DRAIN_UNREAD_BYTES = 1024 * 1024
_MAX_REQUEST_ID = 200
_log = structlog.get_logger("runtime.access")


def request_id_from(scope: Scope) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID:
            if 0 < len(value) <= _MAX_REQUEST_ID and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return uuid.uuid4().hex


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

    def __init__(self, app: ASGIApp, health: Health, metrics: Metrics, max_body_bytes: int):
        self.app = app
        self.health = health
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (_REQUEST_ID, request_id.encode())
        health = self.health
        status = 0
        body_done = scope["method"] in ("GET", "HEAD") and not _has_body(scope)

        async def receive_tracked() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status, body_done
            if message["type"] == "http.response.start":
                status = message["status"]
                if not body_done and status != 413 and (_content_length(scope) or 0) <= _DRAIN_UNREAD_BYTES:
                    # The server ends the connection with the response if the body was left
                    # unread; discard it first so the connection can be reused.
                    body_done = True
                    await _discard_body(receive, _DRAIN_UNREAD_BYTES)
                headers = list(message.get("headers", ()))
                headers.append(id_header)
                if health.state is HealthState.DRAINING:
                    # Ask keep-alive clients to reconnect, so the drain can close the listener.
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        health.request_started()
        self.metrics.request_started()
        start = time.perf_counter()
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                body_done = True  # never read: the connection closes after the 413
                await send_json(send_with_id, 413, too_large_body(self.max_body_bytes))
            else:
                await self.app(scope, receive_tracked, send_with_id)
        except Exception:
            _log.exception("unhandled error", path=scope["path"])
            if status == 0:
                await send_json(send_with_id, 500, {"detail": "Internal Server Error", "request_id": request_id})
        finally:
            elapsed = time.perf_counter() - start
            health.request_finished()
            route = _route_of(scope)
            self.metrics.request_finished(scope["method"], route, status, elapsed)
            _log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
            )
            structlog.contextvars.unbind_contextvars("request_id")


def too_large_body(limit: int) -> dict[str, Any]:
    return {"detail": f"Request body exceeds the limit of {limit} bytes", "limit": limit}


async def _discard_body(receive: Receive, limit: int) -> None:
    read = 0
    while read <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _has_body(scope: Scope) -> bool:
    for name, _ in scope["headers"]:
        if name in (b"content-length", b"transfer-encoding"):
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _route_of(scope: Scope) -> str | None:
    handler = getattr(scope.get("endpoint"), "__self__", None)  # the bound Handler.endpoint
    route = getattr(handler, "route", None)
    return getattr(route, "path", None)
