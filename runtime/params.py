"""FastAPI's parameter markers (`Header()`, `Query(ge=1)`, `Depends(...)`, pydantic `Field(...)`)
read from a handler's signature once at boot.

The runtime does not import FastAPI or pydantic: markers are recognised only when the app's own
code has imported them (`sys.modules`). A marker is found in `Annotated[...]` or as the default.
"""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Any

import msgspec

from .annotations import strip_annotated

# Marker class name (fastapi.params) -> where the value comes from.
_SOURCES = {
    "Query": "query",
    "Header": "header",
    "Cookie": "cookie",
    "Path": "path",
    "Body": "body",
    "Form": "form",
    "File": "file",
    "Depends": "depends",
    "Security": "security",
}
_CONSTRAINTS = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern")


class Marker(msgspec.Struct, frozen=True):
    """What a parameter's marker says: its source, wire name, constraints and real default."""

    source: str | None  # None: a pydantic Field (constraints only)
    alias: str | None = None
    embed: bool = False
    convert_underscores: bool = True
    constraints: dict[str, Any] = {}
    default: Any = inspect.Parameter.empty
    dependency: Any = None


def _field_info_class() -> type | None:
    module = sys.modules.get("pydantic.fields")
    return getattr(module, "FieldInfo", None) if module else None


def _depends_class() -> Any:
    module = sys.modules.get("fastapi.params")
    return getattr(module, "Depends", None) if module else None


def _source_of(obj: Any) -> str | None:
    for cls in type(obj).__mro__:
        if cls.__module__ == "fastapi.params" and cls.__name__ in _SOURCES:
            return _SOURCES[cls.__name__]
    return None


def is_marker(obj: Any) -> bool:
    field_info, depends = _field_info_class(), _depends_class()
    return (field_info is not None and isinstance(obj, field_info)) or (
        depends is not None and isinstance(obj, depends)
    )


def read_marker(obj: Any) -> Marker:
    """The Marker of a FieldInfo (FastAPI's Query/Header/..., pydantic's Field) or a Depends."""
    depends = _depends_class()
    if depends is not None and isinstance(obj, depends):
        return Marker(source=_source_of(obj) or "depends", dependency=obj.dependency)
    constraints: dict[str, Any] = {}
    for item in getattr(obj, "metadata", ()):
        for name in _CONSTRAINTS:
            value = getattr(item, name, None)
            if value is not None:
                constraints[name] = value
    default = getattr(obj, "default", inspect.Parameter.empty)
    if default is Ellipsis or type(default).__name__ == "PydanticUndefinedType":
        default = inspect.Parameter.empty
    factory = getattr(obj, "default_factory", None)
    if default is inspect.Parameter.empty and factory is not None:
        default = _Factory(factory)
    return Marker(
        source=_source_of(obj),
        alias=getattr(obj, "alias", None),
        embed=bool(getattr(obj, "embed", False)),
        convert_underscores=bool(getattr(obj, "convert_underscores", True)),
        constraints=constraints,
        default=default,
    )


class _Factory:
    """A default made by a factory on each call (a Field's `default_factory`)."""

    def __init__(self, factory: Any):
        self.factory = factory


def is_factory(default: Any) -> bool:
    return isinstance(default, _Factory)


def annotated_markers(annotation: Any) -> tuple[Any, list[Any]]:
    """(the type without Annotated's FastAPI/pydantic markers, those markers)."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return annotation, []
    markers = [extra for extra in typing.get_args(annotation)[1:] if is_marker(extra)]
    return strip_annotated(annotation, keep=lambda extra: not is_marker(extra)), markers


def constrain(annotation: Any, constraints: dict[str, Any]) -> Any:
    """`annotation` with msgspec's Meta for the constraints (inside Optional[...])."""
    if not constraints:
        return annotation
    meta = msgspec.Meta(**constraints)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        args = typing.get_args(annotation)
        if type(None) in args:
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                return typing.Optional[typing.Annotated[rest[0], meta]]  # noqa: UP045 (built at run time)
    return typing.Annotated[annotation, meta]
