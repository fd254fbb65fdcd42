"""Per-route result handling: the return annotation as FastAPI's response model, compiled at boot.

The reference registers GET handlers (and body-method handlers that take a pydantic model, or no
body parameter) with FastAPI unchanged, so their return annotation is the response model: the
result is validated, extra fields dropped, and written by pydantic by alias. Other body-method
handlers are wrapped by `create_lb_handler` in a function without a return annotation, so the
reference applies no model there and encodes the result with `jsonable_encoder`. The runtime does
the same, except that a pydantic model, dataclass or TypedDict annotation is applied on every
route: the reference sends such a route's unannotated fields (a password hash) to the client.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

import orjson

from .annotations import is_pydantic_model
from .encoding import encode, jsonable_default
from .errors import ResponseValidationError
from .manifest import Route

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# pydantic's own JSON for the types orjson knows: UTC as `Z`. No default: anything else goes to
# pydantic itself.
_PYDANTIC_LIKE = (
    orjson.OPT_SERIALIZE_NUMPY
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_UTC_Z
)
# typing.Dict and typing.List are distinct objects from dict and list: both spellings are looked up.
_PLAIN: dict[Any, type] = {
    dict: dict,
    list: list,
    typing.Dict: dict,  # noqa: UP006
    typing.List: list,  # noqa: UP006
    Any: object,
}
_STREAMS = {
    collections.abc.Iterator,
    collections.abc.Iterable,
    collections.abc.Generator,
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
}


class ResultPlan:
    """How one route's results become JSON: `render(result)` and `render_item(item)` give bytes."""

    def __init__(self, func: Callable[..., Any], route: Route):
        self.annotation = _return_annotation(func)
        self.is_stream = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
        unchanged = registered_unchanged(func, route)
        # A body-method sync generator runs inside the reference's wrapper, whose result is the
        # generator object: jsonable_encoder turns it into a JSON array.
        self.collects_generator = not unchanged and inspect.isgeneratorfunction(func)
        self.model: Any = None  # the response model's type (None: no model)
        self.item_model: Any = None  # a typed stream's item type
        self._adapter: Any = None
        self._plain: type | None = None
        annotation = self.annotation
        if annotation is None or is_response_type(annotation):
            pass
        elif self.is_stream:
            item = _stream_item(annotation)
            if item is not None and (unchanged or is_structured(item)):
                self.item_model = item
                self._adapter = _adapter(item)
        elif unchanged or is_structured(annotation):
            self.model = annotation
            self._adapter = _adapter(annotation)
            self._plain = (
                _PLAIN.get(annotation) if isinstance(annotation, typing.Hashable) else None
            )
        if self._adapter is None:
            self.model = self.item_model = None
        # Without a model, jsonable_encoder's way (orjson, the fast path).
        self.render: Callable[[Any], bytes] = encode
        self.render_item: Callable[[Any], bytes] = encode
        if self.item_model is not None:
            self.render_item = self._render_model
        elif self._plain is not None:
            self.render = self._render_plain
        elif self.model is not None:
            self.render = self._render_model

    def _render_model(self, result: Any) -> bytes:
        adapter = self._adapter
        try:
            value = adapter.validate_python(result, from_attributes=True)
        except _validation_error() as exc:
            raise ResponseValidationError(exc.errors(include_url=False)) from None
        # A value pydantic has no serializer for (a msgspec Struct, numpy, a Path under `Any`) is
        # converted as without a model, where the reference fails with a 500.
        return adapter.dump_json(value, by_alias=True, fallback=jsonable_default)

    def _render_plain(self, result: Any) -> bytes:
        """`-> dict` and the like: orjson writes what pydantic would write for JSON types."""
        if isinstance(result, self._plain):  # type: ignore[arg-type]
            try:
                return orjson.dumps(result, option=_PYDANTIC_LIKE)
            except orjson.JSONEncodeError:
                pass  # a value orjson does not know (Decimal, a model, a big int): pydantic decides
        return self._render_model(result)


def _validation_error() -> Any:
    return sys.modules["pydantic"].ValidationError


def registered_unchanged(func: Callable[..., Any], route: Route) -> bool:
    """Whether `create_lb_handler` registers `func` as it is (its return annotation then counts)."""
    if route.method not in BODY_METHODS:
        return True
    try:
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func)
    except Exception:  # the reference falls back to the handler itself
        return True
    path_params = set(route.path_params)
    body = [
        (name, hints.get(name, Any))
        for name, param in signature.parameters.items()
        if name != "self"
        and name not in path_params
        and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    ]
    if any(is_pydantic_model(annotation) for _, annotation in body):
        return True
    return not body


def _return_annotation(func: Callable[..., Any]) -> Any:
    try:
        annotation = typing.get_type_hints(func).get("return")
    except Exception:
        return None
    return None if annotation is type(None) else annotation


def is_response_type(annotation: Any) -> bool:
    from starlette.responses import Response

    return isinstance(annotation, type) and issubclass(annotation, Response)


def _stream_item(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in _STREAMS and args:
        return args[0]
    return None


def _pydantic() -> Any:
    module = sys.modules.get("pydantic")
    if module is None:
        try:
            import pydantic as module  # a dataclass or TypedDict model without the app importing it
        except ImportError:
            return None
    return module


def is_structured(annotation: Any) -> bool:
    """A pydantic model, dataclass or TypedDict, alone or inside list/Optional/dict/Union."""
    if is_pydantic_model(annotation):
        return True
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or typing.is_typeddict(annotation)
    ):
        return True
    if isinstance(annotation, type) and hasattr(
        annotation, "__required_keys__"
    ):  # typing_extensions
        return True
    return any(is_structured(arg) for arg in typing.get_args(annotation))


def _adapter(annotation: Any) -> Any:
    """A pydantic TypeAdapter for the annotation, or None when pydantic is absent or refuses it."""
    pydantic = _pydantic()
    if pydantic is None:
        return None
    try:
        return pydantic.TypeAdapter(annotation)
    except Exception:  # a type pydantic has no schema for (FastAPI would refuse to start)
        return None
