"""structlog configuration: one JSON object a line on stdout (or a console format for terminals).

The runtime's own lines go through structlog; lines from the standard `logging` module (the
server's, the user's code) are rendered by the same processors, so the stream stays uniform.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog


def _dumps_bytes(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=repr)


def _dumps_str(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=repr).decode()


_configured = {"level": logging.INFO, "format": "json"}


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Set up structlog and route the standard library's logging through it."""
    numeric = logging.getLevelName(level.upper())
    _configured.update(level=numeric, format=fmt)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "console":
        final: Any = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        stdlib_final: Any = final
        factory: Any = structlog.PrintLoggerFactory(sys.stdout)
        tail: list[Any] = []
    else:
        final = structlog.processors.JSONRenderer(serializer=_dumps_bytes)
        stdlib_final = structlog.processors.JSONRenderer(serializer=_dumps_str)
        factory = structlog.BytesLoggerFactory(sys.stdout.buffer)
        tail = [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*shared, *tail, final],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, stdlib_final],
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

    It is on the hot path, so in JSON mode it is a structlog logger with a short chain of its
    own (the request id is passed in, so the contextvars merge is skipped) whose lines are
    written once per event-loop iteration rather than with a write call each.
    """
    if _configured["level"] > logging.INFO:
        return lambda *args: None
    if _configured["format"] == "json":
        logger = structlog.wrap_logger(
            _BatchedLines(sys.stdout.buffer),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=_dumps_bytes),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(_configured["level"]),
        )
    else:
        logger = structlog.get_logger("runtime.access")
    info = logger.info

    def write(request_id: str, method: str, path: str, route: str | None, status: int, seconds: float) -> None:
        info("request", request_id=request_id, method=method, path=path, route=route, status=status,
             duration_ms=round(seconds * 1000, 3))

    return write


class _BatchedLines:
    """A structlog output that writes the lines of one event-loop iteration together.

    Under load many requests finish in the same iteration; their lines leave in one write
    (still within microseconds), instead of one write and flush each. Outside a running loop,
    and at exit, lines are written at once.
    """

    def __init__(self, stream: Any):
        self.stream = stream
        self.pending: list[bytes] = []
        self.scheduled = False
        atexit.register(self.flush)

    def msg(self, message: bytes) -> None:
        self.pending.append(message)
        if self.scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self.scheduled = True
        loop.call_soon(self.flush)

    info = msg

    def flush(self) -> None:
        self.scheduled = False
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        self.stream.write(b"\n".join(lines) + b"\n")
        self.stream.flush()
