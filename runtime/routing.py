"""Dispatch a request to its endpoint and turn what goes wrong into the contract's answers.

Starlette's Router tries routes one by one; a manifest can hold a thousand routes, so static
paths are looked up in a dict, and only templated paths (`/items/{item_id}`) are tried in
order, with patterns compiled by Starlette's own `compile_path`. Whatever an endpoint raises is
answered here from the one table in `errors` (FastAPI's shapes), without a stack of exception
middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import RedirectResponse, Response
from starlette.routing import compile_path

from .errors import HandlerTimeout, answer, is_listed
from .responses import answer_response
from .types import Receive, Scope, Send

# An endpoint takes the request as ASGI gives it and returns the response to send; it builds a
# Starlette Request only if it needs one (most handlers only need the scope and the body).
Endpoint = Callable[[Scope, Receive, Send], Awaitable[Response]]
_log = structlog.get_logger("runtime.app")


class RouteEntry:
    """One served route: its template, method and endpoint."""

    __slots__ = ("path", "method", "endpoint")

    def __init__(self, path: str, method: str, endpoint: Endpoint):
        self.path = path
        self.method = method
        self.endpoint = endpoint


class _Pattern:
    __slots__ = ("regex", "convertors", "methods")

    def __init__(self, path: str):
        self.regex, _, self.convertors = compile_path(path)
        self.methods: dict[str, RouteEntry] = {}


class Router:
    """Finds the route for a method and path: (entry, path params) or why there is none."""

    def __init__(self, entries: list[RouteEntry]):
        self.static: dict[str, dict[str, RouteEntry]] = {}
        self.patterns: list[_Pattern] = []
        by_template: dict[str, _Pattern] = {}
        for entry in entries:
            if "{" not in entry.path:
                self.static.setdefault(entry.path, {}).setdefault(entry.method, entry)
                continue
            pattern = by_template.get(entry.path)
            if pattern is None:
                pattern = by_template[entry.path] = _Pattern(entry.path)
                self.patterns.append(pattern)
            pattern.methods.setdefault(entry.method, entry)

    def match(
        self, method: str, path: str
    ) -> tuple[RouteEntry | None, dict[str, Any], tuple[str, ...]]:
        """(entry, path params, allowed methods when the path exists but not for this method)."""
        methods = self.static.get(path)
        params: dict[str, Any] = {}
        if methods is None:
            for pattern in self.patterns:
                found = pattern.regex.match(path)
                if found is not None:
                    methods = pattern.methods
                    params = {
                        k: pattern.convertors[k].convert(v) for k, v in found.groupdict().items()
                    }
                    break
            else:
                return None, params, ()
        entry = methods.get(method) or (methods.get("GET") if method == "HEAD" else None)
        if entry is None:
            allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())
            return None, params, tuple(sorted(allowed))
        return entry, params, ()


class RoutedApp:
    """The ASGI app for the routes: dispatch, call, and answer errors with the contract's bodies."""

    def __init__(self, entries: list[RouteEntry]):
        self.router = Router(entries)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry, params, allowed = self.router.match(scope["method"], scope["path"])
        if entry is None:
            await self._no_route(scope, receive, send, allowed)
            return
        scope["path_params"] = params
        scope["route_path"] = entry.path
        try:
            response = await entry.endpoint(scope, receive, send)
        except Exception as exc:
            response = error_response(exc, scope)
        await response(scope, receive, send)

    async def _no_route(
        self, scope: Scope, receive: Receive, send: Send, allowed: tuple[str, ...]
    ) -> None:
        response: Response
        if allowed:
            response = error_response(
                HTTPException(405, headers={"Allow": ", ".join(allowed)}), scope
            )
        else:
            path = scope["path"]
            # As Starlette (and so the reference) does: `/items/` redirects to `/items` when that exists.
            other = path[:-1] if path.endswith("/") and path != "/" else path + "/"
            found, _, other_allowed = self.router.match(scope["method"], other)
            if found is not None or other_allowed:
                query = scope.get("query_string", b"").decode("latin-1")
                response = RedirectResponse(other + (f"?{query}" if query else ""), status_code=307)
            else:
                response = error_response(HTTPException(404), scope)
        await response(scope, receive, send)


def error_response(exc: Exception, scope: Scope) -> Response:
    """The contract's answer for an exception raised while handling the request of `scope`, logged
    when it says something about the worker or the client."""
    if isinstance(exc, HandlerTimeout):
        _log.warning("handler timed out", path=scope["path"], timeout_s=exc.seconds)
    elif isinstance(exc, ClientDisconnect):
        _log.info("client disconnected before sending the whole body", path=scope["path"])
    elif not is_listed(exc):
        _log.error("unhandled error", path=scope["path"], error=type(exc).__name__, exc_info=exc)
    return answer_response(answer(exc, scope.get("state", {}).get("request_id", "")))
