"""The ASGI application: `/ping` and `/metrics` first, then the routed handlers.

`WorkerApp` exists from the moment the port is bound; the routed app is attached once the
handlers have loaded. Until then every route but `/ping` (204) answers 503.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from .handlers import Handler
from .health import Health, HealthState
from .metrics import Metrics, NoMetrics
from .middleware import RequestContext, request_id_from
from .responses import JSONResponse, encode_json
from .routing import RoutedApp, RouteEntry
from .settings import Settings
from .types import Receive, Scope, Send

_PING_BODY = {
    HealthState.READY: {"status": "healthy"},
    HealthState.DRAINING: {"status": "draining"},
    HealthState.DEFUNCT: {"status": "defunct"},
}
_PING_STATUS = {
    HealthState.STARTING: 204,
    HealthState.READY: 200,
    HealthState.DRAINING: 503,
    HealthState.DEFUNCT: 503,
}


class WorkerApp:
    """The outermost ASGI app; `/ping` never waits behind handlers, limits or the thread pool."""

    def __init__(self, settings: Settings, health: Health, metrics: Metrics | NoMetrics):
        self.settings = settings
        self.health = health
        self.metrics = metrics
        self.routed: Any = None  # set by `attach` once the handlers are loaded
        self.health_port = settings.health_port if settings.separate_health_port else None

    def attach(self, routed: Any) -> None:
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/ping":
                await self._ping(scope, receive, send)
            elif (
                self.health_port is not None
                and scope.get("server", (None, None))[1] == self.health_port
            ):
                await self._health_listener(scope, receive, send)
            elif path == "/metrics" and self.settings.metrics_on_main_port:
                await self._metrics(scope, send)
            elif self.routed is None:
                await _answer(
                    scope,
                    receive,
                    send,
                    503,
                    {"detail": "The worker is starting"},
                    {"retry-after": "1"},
                )
            else:
                await self.routed(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await _refuse_websocket(scope, receive, send)

    async def _ping(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.health.current()
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(
                scope, receive, send, 405, {"detail": "Method Not Allowed"}, {"allow": "GET, HEAD"}
            )
            return
        await _answer(scope, receive, send, _PING_STATUS[state], _PING_BODY.get(state))

    async def _health_listener(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/metrics" and self.settings.metrics_on_health_port:
            await self._metrics(scope, send)
        else:
            await _answer(scope, receive, send, 404, {"detail": "Not Found"})

    async def _metrics(self, scope: Scope, send: Send) -> None:
        body = self.metrics.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", self.metrics.content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    _id_header(scope),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _id_header(scope: Scope) -> tuple[bytes, bytes]:
    return (b"x-request-id", request_id_from(scope).encode())


async def _answer(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
) -> None:
    """A JSON answer given before the middleware (which stamps the request id on the others)."""
    headers = {**(headers or {}), "x-request-id": request_id_from(scope)}
    await JSONResponse(body, status, headers)(scope, receive, send)


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Flash apps have no WebSocket routes: an upgrade request gets the usual 404 JSON answer
    (through the ASGI denial-response extension, which Hypercorn and uvicorn offer), or a plain
    close, which the server turns into a 403, where the extension is missing."""
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await _answer(
            scope, receive, send, 404, {"detail": "Not Found"}
        )  # Starlette's Response sends it as a denial
    else:
        await send({"type": "websocket.close", "code": 1000})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge the server's lifespan events; the runtime runs its own boot sequence."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_routed_app(
    handlers: list[Handler],
    settings: Settings,
    health: Health,
    metrics: Metrics | NoMetrics,
    executor: Any = None,
    title: str = "Flash worker",
    version: str = "",
) -> RequestContext:
    """The user's routes, plus /execute, /openapi.json and /docs when enabled, behind the middleware."""
    entries: list[RouteEntry] = []
    if executor is not None:
        entries.append(RouteEntry("/execute", "POST", executor.endpoint))
    for handler in handlers:
        entries.append(RouteEntry(handler.route.path, handler.route.method, handler.endpoint))
    if settings.openapi:
        # After the user's routes: an app that defines /docs itself keeps it.
        entries.extend(_openapi_routes(handlers, title, version))
    return RequestContext(RoutedApp(entries), health, metrics, settings.max_body_bytes)


def _openapi_routes(handlers: list[Handler], title: str, version: str) -> list[RouteEntry]:
    """`/openapi.json` and `/docs`. The document is built on its first request, not at boot: for
    a large manifest it costs more than the rest of the boot (about 130 ms for 1000 routes), and
    a worker serves traffic long before anyone reads its schema. It is built once, in a thread,
    so the event loop keeps serving meanwhile."""
    from .openapi import DOCS_HTML

    page = DOCS_HTML.read_bytes() if DOCS_HTML.is_file() else b"<!doctype html><title>API</title>"
    built: list[bytes] = []
    lock = asyncio.Lock()

    def build() -> bytes:
        from . import __version__
        from .openapi import build_openapi

        return encode_json(build_openapi(handlers, title, version or __version__))

    async def openapi(scope: Scope, receive: Receive, send: Send) -> Response:
        if not built:
            async with lock:
                if not built:
                    built.append(await asyncio.get_running_loop().run_in_executor(None, build))
        return JSONResponse.encoded(built[0])

    async def docs(scope: Scope, receive: Receive, send: Send) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    return [RouteEntry("/openapi.json", "GET", openapi), RouteEntry("/docs", "GET", docs)]
