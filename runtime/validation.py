"""msgspec's validation errors, told the way FastAPI (pydantic) tells them.

The runtime validates with msgspec; clients of the reference read pydantic's error entries
(`{"type", "loc", "msg"}`). msgspec stops at the first error, so `detail` has one entry. Its
messages name the JSON path (`$.matrix[0][1]`) but elide dict keys (`$.weights[...]`); on that
error path only, the key is found again by checking the input's entries one by one.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from .annotations import bare, is_pydantic_model

_MISSING = re.compile(r"^Object missing required field `(?P<field>.*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`$")
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]|(\[\.\.\.\])")
_CONSTRAINT = re.compile(
    r"^Expected `(?P<kind>[^`]*)` (?:(?P<op>>=|>|<=|<) (?P<bound>\S+)"
    r"|of length (?P<len_op>>=|<=) (?P<length>\d+)|matching regex (?P<pattern>.*)"
    r"|that's a multiple of (?P<multiple>\S+))$"
)
_BOUNDS = {
    ">=": ("ge", "greater_than_equal", "greater than or equal to"),
    ">": ("gt", "greater_than", "greater than"),
    "<=": ("le", "less_than_equal", "less than or equal to"),
    "<": ("lt", "less_than", "less than"),
}
_KEY = object()  # a dict key msgspec did not name
# expected type -> (type when the input had the wrong JSON type, type when a string did not parse, msg)
_TYPES = {
    "int": ("int_type", "int_parsing", "Input should be a valid integer"),
    "float": ("float_type", "float_parsing", "Input should be a valid number"),
    "bool": ("bool_type", "bool_parsing", "Input should be a valid boolean"),
    "str": ("string_type", "string_type", "Input should be a valid string"),
    "object": ("dict_type", "dict_type", "Input should be a valid dictionary"),
    "array": ("list_type", "list_type", "Input should be a valid list"),
    "null": ("none_required", "none_required", "Input should be None"),
}
_PARSING_MSG = {
    "int": "Input should be a valid integer, unable to parse string as an integer",
    "float": "Input should be a valid number, unable to parse string as a number",
    "bool": "Input should be a valid boolean, unable to interpret input",
}


def validation_error(
    source: str,
    exc: msgspec.ValidationError,
    fields: dict[str, Any],
    data: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """One `detail` entry for a msgspec error in the parameters from `source` (body/query/path).

    `fields` maps parameter names to their annotations; `data` returns the undecoded-as-Struct
    input, needed only to name a dict key msgspec elided.
    """
    message, _, where = str(exc).partition(" - at `$")
    tokens: list[Any] = []
    for name, index, key in _PATH_TOKEN.findall(where.rstrip("`")):
        tokens.append(_KEY if key else int(index) if index else name)
    loc, raw_annotation = _resolve(tokens, fields, data)
    annotation = bare(raw_annotation)
    loc = [source, *loc]

    constrained = _CONSTRAINT.match(message)
    if constrained:
        return _constraint_entry(constrained, _metas(raw_annotation), loc)
    missing = _MISSING.match(message)
    if missing:
        return {"type": "missing", "loc": [*loc, missing["field"]], "msg": "Field required"}
    if len(loc) == 1 and message.startswith("Expected `object`"):
        return {
            "type": "model_attributes_type",
            "loc": loc,
            "msg": "Input should be a valid dictionary or object to extract fields from",
        }
    special = _by_annotation(annotation, message)
    if special is not None:
        return {"type": special[0], "loc": loc, "msg": special[1]}
    expected = _EXPECTED.match(message)
    if expected:
        kind, got = expected["expected"].split(" ")[0], expected["got"]
        if kind == "int" and got == "float":
            return {
                "type": "int_from_float",
                "loc": loc,
                "msg": "Input should be a valid integer, got a number with a fractional part",
            }
        wrong_type, parsing, msg = _TYPES.get(kind, ("value_error", "value_error", message))
        if kind == "bool" and got in ("int", "float", "str"):
            return {"type": parsing, "loc": loc, "msg": _PARSING_MSG["bool"]}
        if got == "str" and kind in _PARSING_MSG:
            return {"type": parsing, "loc": loc, "msg": _PARSING_MSG[kind]}
        return {"type": wrong_type, "loc": loc, "msg": msg}
    return {"type": "value_error", "loc": loc, "msg": message}


def _metas(annotation: Any) -> dict[str, Any]:
    """The msgspec Meta constraints on an annotation (inside Optional too), as given."""
    found: dict[str, Any] = {}
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        for extra in extras:
            if isinstance(extra, msgspec.Meta):
                for name in (
                    "gt",
                    "ge",
                    "lt",
                    "le",
                    "multiple_of",
                    "min_length",
                    "max_length",
                    "pattern",
                ):
                    if getattr(extra, name) is not None:
                        found[name] = getattr(extra, name)
        return {**_metas(base), **found}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found.update(_metas(arg))
    return found


def _constraint_entry(
    found: re.Match[str], metas: dict[str, Any], loc: list[Any]
) -> dict[str, Any]:
    """pydantic's entry for a value outside a constraint (`ge`, `max_length`, `pattern`, ...)."""
    kind = found["kind"]
    if found["op"]:
        op = found["op"]
        # msgspec tells an integer `lt=1000` as `<= 999`: name the bound the handler declared
        if op in (">=", "<=") and _BOUNDS[op][0] not in metas and _BOUNDS[op[0]][0] in metas:
            op = op[0]
        name, type_, words = _BOUNDS[op]
        bound = metas.get(name, found["bound"])
        return {"type": type_, "loc": loc, "msg": f"Input should be {words} {bound}"}
    if found["len_op"]:
        longest = found["len_op"] == "<="
        length = metas.get("max_length" if longest else "min_length", found["length"])
        if kind == "str":
            plural = "" if str(length) == "1" else "s"
            return {
                "type": "string_too_long" if longest else "string_too_short",
                "loc": loc,
                "msg": f"String should have {'at most' if longest else 'at least'} {length} character{plural}",
            }
        plural = "" if str(length) == "1" else "s"
        what = "Dictionary" if kind == "object" else "List"
        return {
            "type": "too_long" if longest else "too_short",
            "loc": loc,
            "msg": f"{what} should have {'at most' if longest else 'at least'} {length} item{plural} after validation",
        }
    if found["pattern"] is not None:
        pattern = metas.get("pattern", found["pattern"].strip("'"))
        return {
            "type": "string_pattern_mismatch",
            "loc": loc,
            "msg": f"String should match pattern '{pattern}'",
        }
    multiple = metas.get("multiple_of", found["multiple"])
    return {"type": "multiple_of", "loc": loc, "msg": f"Input should be a multiple of {multiple}"}


def _by_annotation(annotation: Any, message: str) -> tuple[str, str] | None:
    """pydantic's type for Literal, Enum, dataclass and model values of the wrong kind."""
    if typing.get_origin(annotation) is typing.Literal:
        choices = " or ".join(repr(c) for c in typing.get_args(annotation))
        return "literal_error", f"Input should be {choices}"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            choices = " or ".join(repr(m.value) for m in annotation)
            return "enum", f"Input should be {choices}"
        if message.startswith("Expected `object`"):
            if dataclasses.is_dataclass(annotation):
                return (
                    "dataclass_type",
                    "Input should be a dictionary or an instance of the dataclass",
                )
            if is_pydantic_model(annotation):
                return "model_type", "Input should be a valid dictionary or instance of the model"
    return None


def _field_type(annotation: Any, name: str) -> Any:
    if dataclasses.is_dataclass(annotation) or isinstance(annotation, type):
        try:
            return typing.get_type_hints(annotation).get(name, Any)
        except Exception:
            return Any
    return Any


def _item_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return args[0] if args else Any


def _value_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return args[1] if len(args) == 2 else Any


def _resolve(
    tokens: list[Any], fields: dict[str, Any], data: Callable[[], Any] | None
) -> tuple[list[Any], Any]:
    """The pydantic-style location and the annotation of the value that failed."""
    loc: list[Any] = []
    annotation: Any = None
    node: Any = None
    loaded = False
    for position, token in enumerate(tokens):
        if position == 0 and isinstance(token, str):
            annotation = fields.get(token, Any)
            if data is not None and not loaded:
                node, loaded = _safe(data), True
            node = node.get(token) if isinstance(node, dict) else None
            loc.append(token)
            continue
        annotation = bare(annotation)
        if token is _KEY:
            value_type = _value_type(annotation)
            key = _failing_key(node, value_type)
            loc.append(key if key is not None else "")
            node = node.get(key) if isinstance(node, dict) and key is not None else None
            annotation = value_type
        elif isinstance(token, int):
            loc.append(token)
            node = node[token] if isinstance(node, list) and token < len(node) else None
            annotation = _item_type(annotation)
        else:
            loc.append(token)
            node = node.get(token) if isinstance(node, dict) else None
            annotation = _field_type(annotation, token)
    return loc, annotation


def _failing_key(node: Any, value_type: Any) -> Any:
    if not isinstance(node, dict):
        return None
    for key, value in node.items():
        try:
            msgspec.convert(value, value_type, strict=False)
        except (msgspec.ValidationError, TypeError):
            return key
    return None


def _safe(data: Callable[[], Any]) -> Any:
    try:
        return data()
    except Exception:
        return None
