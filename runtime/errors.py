"""The runtime's exceptions, and the one table that turns each into its HTTP answer.

Each exception carries what its answer needs (the body cap, the timeout, the retry delay).
`ANSWERS` maps an exception class to the status, headers and JSON body the client gets; `answer`
looks an exception up along its class's MRO, as Starlette's exception middleware does, so a
subclass gets its nearest listed base's answer. Anything not listed is the one 500, which names
the exception's class and never its message or traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

# (status, headers, JSON body); the body of a 1xx, 204 or 304 answer is never sent.
Answer = tuple[int, Mapping[str, str] | None, Any]


class StartupError(Exception):
    """The worker cannot start: a bad setting, manifest, module, function or artifact."""


class RequestValidationError(Exception):
    """A request's parameters failed validation; `errors` is FastAPI's `detail` list."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors)
        self.errors = errors


class ResponseValidationError(Exception):
    """The handler's result does not match its response model (a 500, as in FastAPI)."""

    def __init__(self, errors: list[Any]):
        super().__init__(f"{len(errors)} validation error(s) for the response")
        self.errors = errors


class BodyTooLarge(HTTPException):
    """The request body passed FLASH_MAX_BODY_BYTES.

    An HTTPException, so that a handler reading the body itself passes it on like its own
    deliberate answers; its own entry in `ANSWERS` adds the limit to the body, which a handler's
    `HTTPException(413)` does not get.
    """

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=f"Request body exceeds the limit of {limit} bytes")
        self.limit = limit


class Overloaded(Exception):
    """No slot for the request: the waiting line is full, the wait took too long, or every
    handler thread is stuck. The client may retry after `retry_after` seconds."""

    def __init__(self, retry_after: int = 1):
        super().__init__()
        self.retry_after = retry_after


class HandlerTimeout(Exception):
    """The handler ran past FLASH_REQUEST_TIMEOUT (`seconds`).

    `slot_outlives_call`: the handler's thread still runs, so its concurrency slot is released
    when the thread returns, not with the response.
    """

    def __init__(self, seconds: float, slot_outlives_call: bool = False):
        super().__init__()
        self.seconds = seconds
        self.slot_outlives_call = slot_outlives_call


ANSWERS: dict[type[BaseException], Callable[[Any], Answer]] = {
    RequestValidationError: lambda exc: (422, None, {"detail": exc.errors}),
    BodyTooLarge: lambda exc: (413, None, {"detail": exc.detail, "limit": exc.limit}),
    HTTPException: lambda exc: (exc.status_code, exc.headers, {"detail": exc.detail}),
    HandlerTimeout: lambda exc: (
        504,
        None,
        {"detail": f"The handler did not finish within {exc.seconds:g} seconds"},
    ),
    Overloaded: lambda exc: (
        503,
        {"Retry-After": str(exc.retry_after)},
        {"detail": "The worker is at capacity; retry shortly"},
    ),
    # Nobody reads this answer; it is what the access line records.
    ClientDisconnect: lambda exc: (400, None, {"detail": "Client disconnected"}),
}


def answer(exc: BaseException, request_id: str) -> Answer:
    """The answer for `exc`: its class's entry in `ANSWERS`, else the 500."""
    for cls in type(exc).__mro__:
        make = ANSWERS.get(cls)
        if make is not None:
            return make(exc)
    return internal_error(exc, request_id)


def internal_error(exc: BaseException, request_id: str) -> Answer:
    """The one 500, for a failure the runtime did not expect, whatever its class."""
    return (
        500,
        None,
        {"detail": "Internal Server Error", "error": type(exc).__name__, "request_id": request_id},
    )


def is_listed(exc: BaseException) -> bool:
    """Whether `exc` has an answer of its own (anything else is an unexpected failure, a 500)."""
    return any(cls in ANSWERS for cls in type(exc).__mro__)
