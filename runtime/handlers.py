"""Run a user's handler for a request: bind, admit, call (loop or pool), time out, encode."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .binding import DEFAULT_FORM_LIMITS, Binder, FormLimits, is_async_callable
from .deadlines import DeadlineExceeded, Deadlines
from .errors import HandlerTimeout, Overloaded, ResponseValidationError, internal_error
from .limits import Limiter
from .manifest import Route
from .response_models import ResultPlan
from .responses import GuardedStream, answer_response, iterate_sync, to_response, wants_events
from .types import Receive, Scope, Send

_log = structlog.get_logger("runtime.handler")


class SyncPool:
    """The threads that run plain `def` handlers, so they never block the event loop."""

    def __init__(self, threads: int):
        self.threads = threads
        self.stuck = 0  # threads still running a handler whose request timed out
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="handler")

    @property
    def exhausted(self) -> bool:
        """Every thread runs a handler that outlived its deadline: no `def` handler can start."""
        return self.stuck >= self.threads

    def count_stuck_until_done(self, future: asyncio.Future[Any]) -> None:
        self.stuck += 1

        def done(_: object) -> None:
            self.stuck -= 1

        future.add_done_callback(done)

    def submit(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Run `func` in a pool thread with the caller's context (request id in logs)."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, func, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        return await self.submit(func, *args)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class Handler:
    """The endpoint for one manifest route: `endpoint(scope, receive, send)` returns the response."""

    def __init__(
        self,
        func: Callable[..., Any],
        route: Route,
        pool: SyncPool,
        limiter: Limiter,
        timeout: float,
        deadlines: Deadlines,
        form_limits: FormLimits = DEFAULT_FORM_LIMITS,
    ):
        self.func = func
        self.deadlines = deadlines
        self.route = route
        self.binder = Binder(func, route, form_limits=form_limits)
        if self.binder.dependencies:
            self.binder.use_pool(pool.run)
        self.result = ResultPlan(func, route)
        self.pool = pool
        self.limiter = limiter
        self.timeout = timeout or None
        self.is_async = is_async_callable(func)
        self.is_async_gen = inspect.isasyncgenfunction(func)
        self.needs_request = self.binder.needs_request

    async def endpoint(self, scope: Scope, receive: Receive, send: Send) -> Response:
        request = Request(scope, receive, send) if self.needs_request else None
        kwargs = await self.binder.bind(scope, receive, request)
        if not self.is_async and self.pool.exhausted:
            raise Overloaded  # it would wait behind threads that may never return
        if not self.limiter.try_acquire():
            await self.limiter.acquire()
        try:
            result = await self._call(kwargs)
            if (
                self.result.collects_generator
                and inspect.isgenerator(result)
                and not wants_events(scope)
            ):
                result = await self.pool.run(list, result)  # the reference answers a JSON array
            response = to_response(result, scope, self._iterate_sync, self.result)
        except HandlerTimeout as exc:
            if not exc.slot_outlives_call:
                self.limiter.release()
            raise
        except HTTPException:  # the handler's own deliberate status (fastapi.HTTPException too)
            self.limiter.release()
            raise
        except ResponseValidationError as exc:
            self.limiter.release()
            _log.error(
                "response validation failed",
                route=self.route.path,
                errors=_errors_for_log(exc.errors),
            )
            return answer_response(internal_error(exc, scope["state"].get("request_id", "")))
        except Exception as exc:
            self.limiter.release()
            _log.error(
                "handler raised", route=self.route.path, error=type(exc).__name__, exc_info=exc
            )
            return answer_response(internal_error(exc, scope["state"].get("request_id", "")))
        except BaseException:
            self.limiter.release()
            raise
        if type(response) is StreamingResponse or type(response) is GuardedStream:
            response = (
                response if isinstance(response, GuardedStream) else GuardedStream.adopt(response)
            )
            response.on_close = self.limiter.release
        elif isinstance(
            response, StreamingResponse
        ):  # a subclass with its own sending (sse-starlette)
            response.body_iterator = self._release_after(response.body_iterator)
        else:
            self.limiter.release()
        return response

    async def _call(self, kwargs: dict[str, Any]) -> Any:
        if self.is_async_gen:
            return self.func(**kwargs)  # the body runs as the response streams
        if self.is_async:
            try:
                return await self.deadlines.run(self.func(**kwargs), self.timeout)
            except DeadlineExceeded:
                raise HandlerTimeout(self.timeout or 0) from None
        future = self.pool.submit(self.func, **kwargs)
        try:
            # shield: a timeout must not mark the future done while its thread still runs.
            result = await self.deadlines.run(asyncio.shield(future), self.timeout)
        except DeadlineExceeded:
            # The thread cannot be stopped: keep its slot until it really returns.
            self.limiter.release_when_done(future)
            self.pool.count_stuck_until_done(future)
            raise HandlerTimeout(self.timeout or 0, slot_outlives_call=True) from None
        if inspect.isawaitable(result):  # a `def` that returned a coroutine
            try:
                result = await self.deadlines.run(result, self.timeout)
            except DeadlineExceeded:
                raise HandlerTimeout(self.timeout or 0) from None
        return result

    def _iterate_sync(self, iterator: Any) -> Any:
        return iterate_sync(iterator, self.pool.run)

    async def _release_after(self, body: Any) -> Any:
        try:
            async for chunk in body:
                yield chunk
        finally:
            self.limiter.release()


def _errors_for_log(errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic's errors without the offending values (they may be secrets)."""
    return [
        {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors
    ]
