"""The runtime's own exceptions."""

from __future__ import annotations

from typing import Any


class StartupError(Exception):
    """The worker cannot start: a bad setting, manifest, module, function or artifact."""


class RequestValidationError(Exception):
    """A request's parameters failed validation; `errors` is FastAPI's `detail` list."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors)
        self.errors = errors
