"""The ASGI application: `/ping` and `/metrics` first, then the routed handlers.

`WorkerApp` exists from the moment the port is bound; the routed Starlette app is attached once
the handlers have loaded. Until then every route but `/ping` (204) answers 503.
"""

from __future__ import annotations

from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .errors import RequestValidationError
from .handlers import Handler, HandlerTimeout
from .health import Health, HealthState
from .limits import Overloaded
from .metrics import Metrics
from .middleware import RequestContext, request_id_from, send_json, too_large_body
from .responses import JSONResponse, encode_json, internal_error_response
from .settings import Settings
from .types import Receive, Scope, Send

_log = structlog.get_logger("runtime.app")
_PING_BODY = {HealthState.READY: {"status": "healthy"}, HealthState.DRAINING: {"status": "draining"}}
_PING_STATUS = {HealthState.STARTING: 204, HealthState.READY: 200, HealthState.DRAINING: 503}
_RETRY_AFTER = [(b"retry-after", b"1")]


class WorkerApp:
    """The outermost ASGI app; `/ping` never waits behind handlers, limits or the thread pool."""

    def __init__(self, settings: Settings, health: Health, metrics: Metrics):
        self.settings = settings
        self.health = health
        self.metrics = metrics
        self.routed: Any = None  # set by `attach` once the handlers are loaded

    def attach(self, routed: Any) -> None:
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/ping":
                await self._ping(scope, send)
            elif self.settings.separate_health_port and scope.get("server", (None, None))[1] == self.settings.health_port:
                await self._health_listener(scope, send)
            elif path == "/metrics" and self.settings.metrics_on_main_port:
                await self._metrics(scope, send)
            elif self.routed is None:
                await send_json(send, 503, {"detail": "The worker is starting"}, [*_RETRY_AFTER, _id_header(scope)])
            else:
                await self.routed(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _ping(self, scope: Scope, send: Send) -> None:
        state = self.health.state
        if scope["method"] not in ("GET", "HEAD"):
            await send_json(send, 405, {"detail": "Method Not Allowed"}, [(b"allow", b"GET, HEAD"), _id_header(scope)])
            return
        await send_json(send, _PING_STATUS[state], _PING_BODY.get(state), [_id_header(scope)])

    async def _health_listener(self, scope: Scope, send: Send) -> None:
        if scope["path"] == "/metrics" and self.settings.metrics_on_health_port:
            await self._metrics(scope, send)
        else:
            await send_json(send, 404, {"detail": "Not Found"}, [_id_header(scope)])

    async def _metrics(self, scope: Scope, send: Send) -> None:
        body = self.metrics.render()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", self.metrics.content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            _id_header(scope),
        ]})
        await send({"type": "http.response.body", "body": body})


def _id_header(scope: Scope) -> tuple[bytes, bytes]:
    return (b"x-request-id", request_id_from(scope).encode())


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
    handlers: list[Handler], settings: Settings, health: Health, metrics: Metrics, executor: Any = None,
) -> RequestContext:
    """The user's routes, plus /execute, /openapi.json and /docs when enabled, behind the middleware."""
    routes: list[BaseRoute] = []
    if executor is not None:
        routes.append(Route("/execute", executor.endpoint, methods=["POST"], name="execute"))
    for handler in handlers:
        routes.append(Route(handler.route.path, handler.endpoint, methods=[handler.route.method], name=handler.route.function))
    if settings.openapi:
        # After the user's routes: an app that defines /docs itself keeps it.
        routes.extend(_openapi_routes(handlers))
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: _http_error,
            RequestValidationError: _validation_error,
            HandlerTimeout: _timeout_error(settings.request_timeout),
            Overloaded: _overloaded_error,
            Exception: _internal_error,
        },
    )
    # Starlette's cap counts what a chunked body has sent so far; RequestContext answers a
    # declared Content-Length over the cap before anything is read.
    capped = RequestBodyLimitMiddleware(app, max_body_size=settings.max_body_bytes)
    return RequestContext(capped, health, metrics, settings.max_body_bytes)


def _openapi_routes(handlers: list[Handler]) -> list[BaseRoute]:
    from . import __version__
    from .openapi import DOCS_HTML, build_openapi

    document = encode_json(build_openapi(handlers, "Flash worker", __version__))
    page = DOCS_HTML.read_bytes() if DOCS_HTML.is_file() else b"<!doctype html><title>API</title>"

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    async def docs(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    return [Route("/openapi.json", openapi, methods=["GET"]), Route("/docs", docs, methods=["GET"])]


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 413:
        limit = request.scope.get("starlette.max_body_size", 0)
        return JSONResponse(too_large_body(limit), status_code=413)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": exc.errors}, status_code=422)


def _timeout_error(seconds: float) -> Any:
    async def handle(request: Request, exc: Exception) -> Response:
        _log.warning("handler timed out", path=request.url.path, timeout_s=seconds)
        return JSONResponse({"detail": f"The handler did not finish within {seconds:g} seconds"}, status_code=504)

    return handle


async def _overloaded_error(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"detail": "The worker is at capacity; retry shortly"}, status_code=503, headers={"Retry-After": "1"}
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this response; RequestContext logs the traceback then.
    return internal_error_response(exc, _request_id(request))

