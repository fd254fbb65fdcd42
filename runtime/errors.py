"""The runtime's own exceptions."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException


class StartupError(Exception):
    """The worker cannot start: a bad setting, manifest, module, function or artifact."""


class RequestValidationError(Exception):
    """A request's parameters failed validation; `errors` is FastAPI's `detail` list."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors)
        self.errors = errors


class BodyTooLarge(HTTPException):
    """The request body passed FLASH_MAX_BODY_BYTES; answered with the limit in the body."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=f"Request body exceeds the limit of {limit} bytes")
        self.limit = limit
