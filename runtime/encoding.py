"""JSON encoding of results as FastAPI's `jsonable_encoder` + `JSONResponse` produce them.

orjson encodes what it knows natively (the fast path); `jsonable_default` converts the rest the way
`jsonable_encoder` does. What orjson refuses altogether (integers beyond 64 bits, nesting deeper
than its limit of 254) goes through `to_jsonable` and the standard library's encoder, which have
the reference's own limits (Python's recursion limit).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import ipaddress
import json
import math
import pathlib
import re
import uuid
from typing import Any

import msgspec
import orjson

from .annotations import is_pydantic_model

# Dataclasses go through `jsonable_default`: orjson reads `__dict__`, which misses fields that were
# decoded with their class-level default. No OPT_UTC_Z: `datetime.isoformat()` writes `+00:00`.
OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


def decimal_value(value: decimal.Decimal) -> int | float:
    """An integral Decimal is an int, any other a float (FastAPI's `decimal_encoder`)."""
    exponent = value.as_tuple().exponent
    return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)


def _pydantic_dump(value: Any) -> Any:
    return value.model_dump(mode="json", by_alias=True)


def _asdict(value: Any) -> dict[str, Any]:
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}


_STR_TYPES = (
    pathlib.PurePath,
    uuid.UUID,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)


def jsonable_default(value: Any) -> Any:
    """What orjson does not encode natively, as `jsonable_encoder` converts it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _asdict(value)
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    if is_pydantic_model(type(value)):
        return _pydantic_dump(value)
    if isinstance(value, (set, frozenset, tuple, collections.deque)):
        return list(value)
    if isinstance(value, decimal.Decimal):
        return decimal_value(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _STR_TYPES):
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    tolist = getattr(
        value, "tolist", None
    )  # numpy scalars and arrays orjson does not take natively
    if callable(tolist):
        return tolist()
    if hasattr(value, "__iter__") and hasattr(value, "keys"):
        return dict(value)
    if hasattr(value, "__dict__"):  # a plain object: its attributes, as jsonable_encoder does
        return vars(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_jsonable(value: Any) -> Any:
    """`value` as plain JSON types (dict, list, str, int, float, bool, None), recursively."""
    if value is None or type(value) in (str, int, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # as orjson writes it on the fast path
    if isinstance(value, dict):
        return {_key(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, (str, int)):  # str and int subclasses (enums handled below first)
        if isinstance(value, enum.Enum):
            return to_jsonable(value.value)
        return str(value) if isinstance(value, str) else int(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    return to_jsonable(jsonable_default(value))


def _key(key: Any) -> Any:
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key.value if isinstance(key, enum.Enum) else key
    return to_jsonable(key)


def encode(content: Any) -> bytes:
    """JSON bytes for a handler's result: orjson, or the fallback for what orjson refuses."""
    try:
        return orjson.dumps(content, default=jsonable_default, option=OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(to_jsonable(content), ensure_ascii=False, separators=(",", ":")).encode()
