"""Types the `responses` routes return; a sibling module, as real apps keep their models apart."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

# pydantic rejects typing.TypedDict before Python 3.12.
from typing_extensions import TypedDict


class Tier(str, enum.Enum):
    FREE = "free"
    PRO = "pro"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class CustomerPublic(BaseModel):
    id: int
    name: str
    email: str


class CustomerPrivate(CustomerPublic):
    password_hash: str


class CustomerQuery(BaseModel):
    id: int
    mode: str = "extra"


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    user_name: str = Field(alias="userName")
    created_by: str = Field(serialization_alias="createdBy")
    note: Optional[str] = None


class Money(BaseModel):
    amount: "Decimal"
    elapsed: "timedelta"
    at: "datetime"


@dataclass
class PointDC:
    x: int
    y: int = 0


class ItemTD(TypedDict):
    sku: str
    qty: int


from datetime import datetime, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402

Money.model_rebuild()
