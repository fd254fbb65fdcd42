"""Handlers that use pydantic models, as apps built for the reference often do."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Order(BaseModel):
    sku: str
    quantity: int = Field(default=1, ge=1)


class Receipt(BaseModel):
    sku: str
    total: float


async def place_order(order: Order) -> Receipt:
    """The model is the body itself."""
    return Receipt(sku=order.sku, total=order.quantity * 2.5)


async def bulk(orders: list[Order], note: str = "") -> dict:
    """A list of models is a key of the body."""
    return {"count": len(orders), "skus": [o.sku for o in orders], "note": note}
