"""Turn a handler's return value, or an error, into a response."""

from __future__ import annotations

import dataclasses
import decimal
import enum
import inspect
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import orjson
from starlette.responses import Response, StreamingResponse

from .types import Scope

# Dataclasses go through `_default`: orjson reads `__dict__`, which misses fields that were
# decoded with their class-level default.
# OPT_UTC_Z writes UTC as `Z`, as pydantic does in the reference.
_OPTIONS = (
    orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_UTC_Z
)


_JSON_TYPE = (b"content-type", b"application/json")


class JSONResponse(Response):
    """JSON encoded by orjson, with the types handlers commonly return.

    A plain answer (no extra headers, media type or background task: every handler's dict) skips
    Starlette's general header assembly; the headers are the same ones it would produce.
    """

    media_type = "application/json"

    def __init__(
        self, content: Any, status_code: int = 200, headers: Any = None, media_type: str | None = None,
        background: Any = None,
    ) -> None:
        if headers is not None or media_type is not None or background is not None or not _has_body(status_code):
            super().__init__(content, status_code, headers, media_type, background)
            return
        self.status_code = status_code
        self.background = None
        self.body = body = encode_json(content)
        self.raw_headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def _has_body(status: int) -> bool:
    return status >= 200 and status not in (204, 304)


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (pathlib.PurePath,)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays orjson does not take natively
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=_OPTIONS)


def to_response(result: Any, scope: Scope, run_sync_iter: Any) -> Response:
    """The response for a handler's return value (`scope` gives the Accept header for streams)."""
    if type(result) is dict:  # the common case first
        return JSONResponse(result)
    if isinstance(result, Response):
        return result
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result), media_type="application/octet-stream")
    if inspect.isasyncgen(result) or inspect.isgenerator(result):
        return stream_response(result, _accept(scope), run_sync_iter)
    return JSONResponse(result)


def _accept(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"accept":
            return value.decode("latin-1")
    return ""


def stream_response(items: Any, accept: str, run_sync_iter: Any) -> StreamingResponse:
    """Stream a generator: Server-Sent Events when the client asks for them, else NDJSON."""
    sse = "text/event-stream" in accept
    source: AsyncIterator[Any] = items if inspect.isasyncgen(items) else run_sync_iter(items)

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for item in source:
                if sse:
                    yield _sse_frame(item)
                else:
                    yield _ndjson_line(item)
        finally:
            # Stop the user's generator when the client goes away or the stream ends early.
            closer = getattr(source, "aclose", None)
            if closer is not None:
                await closer()

    media = "text/event-stream" if sse else "application/x-ndjson"
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"} if sse else None
    return StreamingResponse(frames(), media_type=media, headers=headers)


def _sse_frame(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        data = bytes(item)
    elif isinstance(item, str):
        data = item.encode()
    else:
        data = encode_json(item)
    return b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"


def _ndjson_line(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    return encode_json(item) + b"\n"


def internal_error_response(exc: BaseException, request_id: str) -> JSONResponse:
    """The 500 body: the exception's class name only, never its message or traceback."""
    return JSONResponse(
        {"detail": "Internal Server Error", "error": type(exc).__name__, "request_id": request_id},
        status_code=500,
    )


class _ThreadedItems:
    """An async iterator over a blocking iterator, each `next` run in the pool."""

    _DONE = object()

    def __init__(self, iterator: Iterator[Any], run_in_thread: Any):
        self.iterator = iterator
        self.run_in_thread = run_in_thread

    def __aiter__(self) -> "_ThreadedItems":
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
