"""Turn a handler's return value, or an error, into a response."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import Response, StreamingResponse

from .encoding import encode
from .errors import Answer
from .types import Scope

if TYPE_CHECKING:
    from .response_models import ResultPlan

_JSON_TYPE = (b"content-type", b"application/json")


class JSONResponse(Response):
    """JSON encoded by orjson, with the types handlers commonly return: the runtime's one way to
    send JSON, for results, error answers and `/ping` alike.

    A 1xx, 204 or 304 carries no body and no content headers, as HTTP requires. Without extra
    headers (every handler's dict) it skips Starlette's general header assembly; the headers are
    the ones that assembly would produce.
    """

    media_type = "application/json"

    def __init__(
        self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.background = None
        if not _has_body(status_code):
            self.body = b""
            self.raw_headers = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in (headers or {}).items()
            ]
        elif headers is None:
            self._plain(encode_json(content), status_code)
        else:
            self.body = encode_json(content)
            self.init_headers(headers)

    @classmethod
    def encoded(cls, body: bytes) -> JSONResponse:
        """A 200 whose JSON body is already encoded."""
        response = cls.__new__(cls)
        response._plain(body, 200)
        return response

    def _plain(self, body: bytes, status_code: int) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]


def _has_body(status: int) -> bool:
    return status >= 200 and status not in (204, 304)


encode_json = encode


def answer_response(answer: Answer) -> JSONResponse:
    """An error answer (`errors.answer`, `errors.internal_error`) as a response."""
    status, headers, body = answer
    return JSONResponse(body, status, headers)


def to_response(result: Any, scope: Scope, run_sync_iter: Any, plan: ResultPlan) -> Response:
    """The response for a handler's return value (`scope` gives the Accept header for streams)."""
    if type(result) is dict:  # the common case first
        return JSONResponse.encoded(plan.render(result))
    if isinstance(result, Response):
        return result
    if inspect.isasyncgen(result) or inspect.isgenerator(result):
        return stream_response(result, _accept(scope), run_sync_iter, plan.render_item)
    if type(result) is bytes and not _is_utf8(result):
        # jsonable_encoder would fail on it (a 500): send the bytes as they are instead.
        return Response(result, media_type="application/octet-stream")
    return JSONResponse.encoded(plan.render(result))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _accept(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"accept":
            return value.decode("latin-1")
    return ""


def wants_events(scope: Scope) -> bool:
    """Whether the client asked for Server-Sent Events."""
    return "text/event-stream" in _accept(scope)


def stream_response(
    items: Any,
    accept: str,
    run_sync_iter: Any,
    render: Callable[[Any], bytes] = encode,
) -> StreamingResponse:
    """Stream a generator: Server-Sent Events when the client asks for them, else JSON lines."""
    sse = "text/event-stream" in accept
    source: AsyncIterator[Any] = items if inspect.isasyncgen(items) else run_sync_iter(items)

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for item in source:
                if sse:
                    yield _sse_frame(item, render)
                else:
                    yield render(item) + b"\n"
                # A generator that never awaits, behind a send that does not block, would keep the
                # loop to itself: /ping, other requests and the disconnect listener must get a turn.
                await asyncio.sleep(0)
        finally:
            # Stop the user's generator when the client goes away or the stream ends early.
            closer = getattr(source, "aclose", None)
            if closer is not None:
                await closer()

    media = "text/event-stream" if sse else "application/jsonl"
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"} if sse else None
    return GuardedStream(frames(), media_type=media, headers=headers)


class GuardedStream(StreamingResponse):
    """A stream that stops when its client leaves, under either server, and calls `on_close`
    however it ends, even when it never started.

    Starlette listens for the client's disconnect only for ASGI servers older than spec 2.4 and
    otherwise relies on `send` raising once the client is gone, which Hypercorn's does not: without
    the listener here a fast generator would run to its end (or forever) with nobody reading,
    starving the event loop. `on_close` is called here rather than from the body iterator's own
    `finally`, which never runs when the client leaves before the first chunk.
    """

    on_close: Callable[[], None] | None = None

    @classmethod
    def adopt(cls, response: StreamingResponse) -> GuardedStream:
        """The same response (status, headers, body, background task) as a guarded stream."""
        guarded = cls.__new__(cls)
        guarded.__dict__.update(response.__dict__)
        return guarded

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        streaming = asyncio.ensure_future(self.stream_response(send))
        listening = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, listening):
                task.cancel()
            await asyncio.gather(streaming, listening, return_exceptions=True)
            closer = getattr(self.body_iterator, "aclose", None)
            try:
                if closer is not None:
                    await (
                        closer()
                    )  # runs the generator's `finally` if it started: the user's closes
            finally:
                if self.on_close is not None:
                    self.on_close()
        if not streaming.cancelled() and streaming.exception() is not None:
            raise streaming.exception()  # type: ignore[misc]
        if self.background is not None:
            await self.background()


def _sse_frame(item: Any, render: Callable[[Any], bytes]) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        data = bytes(item)
    elif isinstance(item, str):
        data = item.encode()
    else:
        data = render(item)
    return b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"


class _ThreadedItems:
    """An async iterator over a blocking iterator, each `next` run in the pool."""

    _DONE = object()

    def __init__(self, iterator: Iterator[Any], run_in_thread: Any):
        self.iterator = iterator
        self.run_in_thread = run_in_thread

    def __aiter__(self) -> _ThreadedItems:
        return self

    async def __anext__(self) -> Any:
        item = await self.run_in_thread(next, self.iterator, self._DONE)
        if item is self._DONE:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        close = getattr(self.iterator, "close", None)
        if close is not None:
            await self.run_in_thread(close)


def iterate_sync(iterator: Iterator[Any], run_in_thread: Any) -> AsyncIterator[Any]:
    """Drive a blocking iterator from the pool, one item per hop, so the loop never blocks."""
    return _ThreadedItems(iterator, run_in_thread)
