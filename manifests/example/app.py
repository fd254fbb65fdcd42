"""An example Flash load-balanced app: the one `make run` serves."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated

import msgspec
from runpod_flash import Endpoint

api = Endpoint(name="example", cpu="cpu3c-1-2", workers=(1, 3))


@api.get("/health")
async def health() -> dict:
    """A route of the app's own (the runtime's /ping is separate)."""
    return {"status": "ok"}


@api.post("/echo")
async def echo(message: str, repeat: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1) -> dict:
    """Echo a message, `repeat` times (1 to 100: msgspec constraints are validated and documented)."""
    return {"message": message * repeat, "at": datetime.now(timezone.utc)}


@api.post("/sum")
def add(numbers: list[float]) -> dict:
    """Add numbers (a plain `def`: it runs in the thread pool)."""
    return {"sum": sum(numbers), "count": len(numbers)}


@api.get("/items/{item_id}")
async def get_item(item_id: int, verbose: bool = False) -> dict:
    """Look an item up by its integer id."""
    item = {"id": item_id, "name": f"item-{item_id}"}
    if verbose:
        item["looked_up_at"] = time.time()
    return item
