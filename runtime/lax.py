"""pydantic's lax-mode conversion of scalar values, where msgspec's differs.

msgspec decodes the common cases on the fast path. Where pydantic (the reference's validator)
accepts more or answers differently, values go through `coerce` first: booleans as numbers,
whitespace and underscores in numeric strings, date-only strings as datetimes, the NaN and
infinity rules of `float` and `Decimal`, and unions in pydantic's smart mode (an exact type
match first, then the members in order). Failures are pydantic's error types and messages.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import types
import typing
from typing import Any

import msgspec

from .annotations import strip_annotated

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_INT_WITH_ZERO_FRACTION = re.compile(r"^([+-]?\d[\d_]*)\.0*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?$")
_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class LaxError(Exception):
    """A value pydantic would refuse: its error `type`, `msg` and the location inside the value."""

    def __init__(self, type_: str, msg: str, loc: tuple[Any, ...] = ()):
        super().__init__(msg)
        self.type = type_
        self.msg = msg
        self.loc = loc


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise LaxError("finite_number", "Input should be a finite number")
        if not value.is_integer():
            raise LaxError(
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            )
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        whole = _INT_WITH_ZERO_FRACTION.match(text)
        if whole:
            text = whole.group(1)
        if text.isascii():
            try:
                return int(text)
            except ValueError:
                pass
        raise LaxError(
            "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        )
    raise LaxError("int_type", "Input should be a valid integer")


def _float(value: Any) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii():
            try:
                return float(text)
            except ValueError:
                pass
        raise LaxError(
            "float_parsing", "Input should be a valid number, unable to parse string as a number"
        )
    raise LaxError("float_type", "Input should be a valid number")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value in (0, 1):
            return bool(value)
        raise LaxError("bool_parsing", "Input should be a valid boolean, unable to interpret input")
    if isinstance(value, float):
        if value in (0.0, 1.0):
            return bool(value)
        raise LaxError("bool_type", "Input should be a valid boolean")
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise LaxError("bool_parsing", "Input should be a valid boolean, unable to interpret input")
    raise LaxError("bool_type", "Input should be a valid boolean")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise LaxError("string_type", "Input should be a valid string")


def _decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, decimal.Decimal)):
        raise LaxError(
            "decimal_type", "Decimal input should be an integer, float, string or Decimal object"
        )
    try:
        number = decimal.Decimal(value.strip() if isinstance(value, str) else str(value))
    except decimal.InvalidOperation:
        raise LaxError("decimal_parsing", "Input should be a valid decimal") from None
    if not number.is_finite():
        raise LaxError("finite_number", "Input should be a finite number")
    return number


def _timestamp(value: float) -> dt.datetime:
    seconds = value / 1000 if abs(value) > 2e10 else value  # pydantic reads large numbers as ms
    try:
        return _UNIX_EPOCH + dt.timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # past year 9999, or NaN
        raise LaxError(
            "datetime_parsing",
            "Input should be a valid datetime, dates after 9999 are not supported as unix timestamps",
        ) from None


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _timestamp(value)
    if isinstance(value, str):
        text = value.strip()
        if _DATE.match(text):
            try:
                return dt.datetime.fromisoformat(text)
            except ValueError:
                pass
        elif _NUMBER.match(text):
            return _timestamp(float(text))
        else:
            try:
                return msgspec.convert(text, dt.datetime, strict=False)
            except msgspec.ValidationError:
                pass
        raise LaxError("datetime_from_date_parsing", "Input should be a valid datetime or date")
    raise LaxError("datetime_type", "Input should be a valid datetime")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise LaxError(
                "date_from_datetime_parsing", "Input should be a valid date or datetime"
            ) from None
    try:
        moment = _datetime(value)
    except LaxError as exc:
        if exc.type == "datetime_type":
            raise LaxError("date_type", "Input should be a valid date") from None
        raise LaxError(
            "date_from_datetime_parsing", "Input should be a valid date or datetime"
        ) from None
    if moment.time() != dt.time(0):
        raise LaxError(
            "date_from_datetime_inexact",
            "Datetimes provided to dates should have zero time - e.g. be exact dates",
        )
    return moment.date()


_SCALARS = {
    int: _int,
    float: _float,
    bool: _bool,
    str: _str,
    decimal.Decimal: _decimal,
    dt.datetime: _datetime,
    dt.date: _date,
}


def _exact(member: Any, value: Any) -> bool:
    """pydantic's strict pass of a smart-mode union: the value already is the member's type."""
    if member is type(None):
        return value is None
    if member in (int, float):
        return type(value) is member
    return (
        member in _SCALARS
        and isinstance(value, member)
        and not (member is dt.date and isinstance(value, dt.datetime))
    )


def union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def coerce(annotation: Any, value: Any) -> Any:
    """`value` as pydantic's lax mode would convert it to `annotation` (scalars, Optional, unions,
    lists and dicts of them); other types are returned unchanged for msgspec to check."""
    annotation = strip_annotated(annotation)
    converter = _SCALARS.get(annotation)
    if converter is not None:
        return converter(value)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _union(typing.get_args(annotation), value)
    if origin in (list, set, frozenset, tuple) and isinstance(value, list):
        args = typing.get_args(annotation)
        item = (
            args[0]
            if args and (origin is not tuple or (len(args) == 2 and args[1] is Ellipsis))
            else None
        )
        if item is None:
            return value
        out = []
        for index, element in enumerate(value):
            try:
                out.append(coerce(item, element))
            except LaxError as exc:
                raise LaxError(exc.type, exc.msg, (index, *exc.loc)) from None
        return out
    if origin is dict and isinstance(value, dict):
        args = typing.get_args(annotation)
        if len(args) != 2:
            return value
        out_dict = {}
        for key, element in value.items():
            try:
                out_dict[key] = coerce(args[1], element)
            except LaxError as exc:
                raise LaxError(exc.type, exc.msg, (key, *exc.loc)) from None
        return out_dict
    return value


def _union(members: tuple[Any, ...], value: Any) -> Any:
    members = tuple(strip_annotated(m) for m in members)
    if value is None and type(None) in members:
        return None
    if any(m not in _SCALARS and m is not type(None) for m in members):
        return value  # a union with structured members: msgspec decides
    for member in members:
        if _exact(member, value):
            return value
    first: LaxError | None = None
    for member in members:
        if member is type(None):
            continue
        try:
            return _SCALARS[member](value)
        except LaxError as exc:
            first = first or exc
    if first is not None and sum(1 for m in members if m is not type(None)) == 1:
        raise first
    raise first or LaxError("union_tag_invalid", "Input does not match any member of the union")


def needs_lax(annotation: Any) -> bool:
    """Whether msgspec's own conversion of `annotation` may differ from pydantic's on a valid value,
    so the value must go through `coerce` on the fast path too (unions of several scalar types,
    Decimal: NaN and infinity)."""
    annotation = strip_annotated(annotation)
    if annotation is decimal.Decimal:
        return True
    members = [strip_annotated(m) for m in union_args(annotation) if m is not type(None)]
    if len(members) > 1:  # smart mode, for unions of scalars only (msgspec checks the others)
        return all(m in _SCALARS for m in members)
    origin = typing.get_origin(annotation)
    if origin in (list, set, frozenset, tuple, dict, typing.Union, types.UnionType):
        return any(needs_lax(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)
    return False


def mentions_scalar(annotation: Any) -> bool:
    """Whether `coerce` has anything to do for `annotation`."""
    annotation = strip_annotated(annotation)
    if annotation in _SCALARS:
        return True
    return any(mentions_scalar(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)
