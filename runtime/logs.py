"""structlog configuration: one JSON object a line on stdout (or a console format for terminals).

The runtime's own lines go through structlog; lines from the standard `logging` module (the
server's, the user's code) are rendered by the same processors, so the stream stays uniform.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson


def _import_structlog() -> Any:
    """structlog, without the terminal pretty-printers (rich, colorama, better_exceptions) that its
    `dev` module imports when they are installed (rich and pygments: ~90 ms of every boot), unless
    the console format, which uses them, is asked for. LOG_FORMAT itself is checked by Settings."""
    if os.environ.get("LOG_FORMAT", "json").strip().lower() == "console":
        import structlog

        return structlog
    hidden = [name for name in ("rich", "colorama", "better_exceptions") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        import structlog
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]  # the app may import them itself
    return structlog


structlog = _import_structlog()

# orjson leaves U+2028, U+2029 and NEL unescaped: valid JSON, but log readers that split lines on
# them (Python's str.splitlines, JavaScript) would cut a line in two. UTF-8 is self-synchronising,
# so these byte sequences occur only as those characters, which occur only inside JSON strings.
_LINE_BREAKS = (
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
    (b"\xc2\x85", b"\\u0085"),
)


def escape_line_breaks(line: bytes) -> bytes:
    """A JSON line with the Unicode line separators a reader might split on escaped."""
    if line.isascii():
        return line
    for raw, escaped in _LINE_BREAKS:
        if raw in line:
            line = line.replace(raw, escaped)
    return line


# The id of the request being handled, added to every log line written while it is. One
# ContextVar of the runtime's own: setting it costs less than structlog's bind/unbind, and each
# request runs in a task (or pool thread) with its own copy of the context.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "flash_request_id", default=None
)


def _add_request_id(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _dumps_bytes(obj: Any, **_: Any) -> bytes:
    return escape_line_breaks(orjson.dumps(obj, default=repr))


def _dumps_str(obj: Any, **_: Any) -> str:
    return escape_line_breaks(orjson.dumps(obj, default=repr)).decode()


_configured: dict[str, Any] = {"level": logging.INFO, "format": "json"}


class _Unfailing:
    """stdout for log lines, whose writes never raise.

    When the reader of stdout is gone (a closed pipe, a dead log collector), a failing write must
    not become an exception in whatever code was logging: the signal handler's first `draining`
    line would otherwise stop the drain, and the worker would hang until SIGKILL.
    """

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, data: Any) -> None:
        try:
            self.stream.write(data)
        except (ValueError, OSError):
            pass

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (ValueError, OSError):
            pass


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Set up structlog and route the standard library's logging through it."""
    numeric = logging.getLevelName(level.upper())
    _configured.update(level=numeric, format=fmt)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "console":
        final: Any = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        stdlib_final: Any = final
        factory: Any = structlog.PrintLoggerFactory(_Unfailing(sys.stdout))
        tail: list[Any] = []
    else:
        final = structlog.processors.JSONRenderer(serializer=_dumps_bytes)
        stdlib_final = structlog.processors.JSONRenderer(serializer=_dumps_str)
        factory = structlog.BytesLoggerFactory(_Unfailing(sys.stdout.buffer))
        tail = [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*shared, *tail, final],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(_Unfailing(sys.stdout))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                stdlib_final,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.captureWarnings(True)  # warnings (deprecations at import) become log lines too


def get_logger(name: str = "runtime") -> Any:
    return structlog.get_logger(name)


AccessLog = Callable[[str, str, str, "str | None", int, float], None]


def access_logger() -> AccessLog:
    """The one-line-per-request writer.

    It is on the hot path, so in JSON mode the line is rendered here rather than by a structlog
    chain (same keys, same order, same timestamp format as the runtime's other lines), and the
    lines are written in batches (`_BatchedLines`) rather than with a write call each.
    Console mode goes through structlog: it is for people reading a terminal.
    """
    if _configured["level"] > logging.INFO:
        return lambda *args: None
    if _configured["format"] != "json":
        info = structlog.get_logger("runtime.access").info

        def write_console(
            request_id: str, method: str, path: str, route: str | None, status: int, seconds: float
        ) -> None:
            info(
                "request",
                request_id=request_id,
                method=method,
                path=path,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 3),
            )

        return write_console
    out = _BatchedLines(sys.stdout.buffer)
    clock = _UTCStamps()

    def write(
        request_id: str, method: str, path: str, route: str | None, status: int, seconds: float
    ) -> None:
        line = orjson.dumps(
            {
                "request_id": request_id,
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "event": "request",
                "level": "info",
                "timestamp": clock.now(),
            }
        )
        out.msg(line if path.isascii() else escape_line_breaks(line))

    return write


class _UTCStamps:
    """ISO 8601 UTC timestamps with microseconds (`2026-01-02T03:04:05.678901Z`).

    The date and time of day are formatted once per second; only the microseconds are per line.
    """

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def now(self) -> str:
        stamp = time.time()
        second = int(stamp)
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return "%s.%06dZ" % (self.prefix, int((stamp - second) * 1_000_000))


class _BatchedLines:
    """Writes access lines in batches, at most FLUSH_SECONDS after the first line of a batch.

    A write to stdout is a system call (and a wake-up of whatever reads the pipe); one per
    request is a measurable share of a small request's cost. Lines are appended to one buffer
    (keeping each line as a bytes object of its own until the write cost more, in the memory
    allocator, than rendering the line) and written together by a timer on the event loop, or at
    once when the buffer is large, when no loop is running, and at exit (`flush_buffered_lines`).
    A crash can lose at most the last FLUSH_SECONDS of access lines; the runtime's other lines
    are never delayed.
    """

    FLUSH_SECONDS = 0.02
    MAX_BUFFERED = 128 * 1024  # bytes

    def __init__(self, stream: Any):
        self.stream = stream
        self.buffer = bytearray()
        self.scheduled = False
        self.loop: asyncio.AbstractEventLoop | None = None
        _flush_on_exit.append(self.flush)

    def msg(self, line: bytes) -> None:
        buffer = self.buffer
        buffer += line
        buffer += b"\n"
        if self.scheduled:
            if len(buffer) >= self.MAX_BUFFERED:
                self.flush()
            return
        loop = self.loop
        if loop is None or not loop.is_running():  # looked up once, not per line
            try:
                loop = self.loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
        self.scheduled = True
        loop.call_later(self.FLUSH_SECONDS, self._timer)

    def _timer(self) -> None:
        self.scheduled = False
        self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        data, self.buffer = self.buffer, bytearray()
        try:
            self.stream.write(data)
            self.stream.flush()
        except (ValueError, OSError):  # stdout closed or its reader gone: nothing to write to
            pass


_flush_on_exit: list[Callable[[], None]] = []


def flush_buffered_lines() -> None:
    """Write out buffered access lines now; also run at exit (call it before `os._exit`)."""
    for flush in _flush_on_exit:
        flush()


atexit.register(flush_buffered_lines)
