"""Types the `kinds` routes bind to; a sibling module, as real apps keep their models apart."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

import msgspec
from pydantic import BaseModel

# pydantic (the reference's binder) rejects typing.TypedDict before Python 3.12.
from typing_extensions import TypedDict


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    S = 1
    M = 2
    L = 3


@dataclass
class Point:
    x: int
    y: int = 0


class Item(TypedDict):
    name: str
    qty: int


class Vector(msgspec.Struct):
    x: float
    y: float


class Order(BaseModel):
    sku: str
    qty: int = 1
    note: Optional[str] = None
