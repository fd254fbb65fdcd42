"""Handlers covering every binding kind and status the runtime promises (no runpod_flash import:
the decorator returns the plain function for load-balanced routes, so plain functions are what
the runtime sees either way)."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Literal, Optional, TypedDict

import msgspec


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Person(TypedDict):
    name: str
    age: int


class Box(msgspec.Struct):
    width: float
    height: float
    label: str = "box"


async def scalars(y: int, ratio: float = 1.5, name: str = "anon", flag: bool = False) -> dict:
    return {"y": y, "ratio": ratio, "name": name, "flag": flag}


async def options(
    mode: Literal["fast", "slow"], color: Color, note: Optional[str] = None, tags: list[str] | None = None
) -> dict:
    return {"mode": mode, "color": color.value, "note": note, "tags": tags}


async def containers(numbers: list[int], weights: dict[str, float], matrix: list[list[int]]) -> dict:
    return {"total": sum(numbers), "weights": weights, "matrix": matrix}


async def structured(point: Point, person: Person, box: Box) -> dict:
    return {"point": point, "person": person, "area": box.width * box.height, "box": box}


async def search(q: str, limit: int = 10, tags: list[str] = [], exact: Optional[bool] = None) -> dict:
    return {"q": q, "limit": limit, "tags": tags, "exact": exact}


async def get_item(item_id: int, verbose: bool = False) -> dict:
    return {"item_id": item_id, "verbose": verbose}


def update_item(item_id: int, name: str) -> dict:
    return {"item_id": item_id, "name": name, "thread": threading.current_thread().name}


async def patch_item(item_id: int, fields: dict) -> dict:
    return {"item_id": item_id, "fields": fields}


async def delete_item(item_id: int) -> dict:
    return {"deleted": item_id}


async def no_params() -> dict:
    return {"ok": True}


async def boom(x: int = 0) -> dict:
    raise ValueError("secret detail that must not leak")


async def values() -> dict:
    return {
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "point": Point(1, 2),
        "box": Box(2, 3),
        "nothing": None,
        "list": [1, "a", None],
    }


async def nothing() -> None:
    return None


def slow_sync(seconds: float = 1.0) -> dict:
    time.sleep(seconds)
    return {"slept": seconds, "thread": threading.current_thread().name}


async def slow_async(seconds: float = 1.0) -> dict:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


# --- the rest of the handler surface: streams, raw returns, uploads --------------------------

STREAM_STATE = {"produced": 0, "closed": False}


async def stream_async(count: int = 5, delay: float = 0.2):
    """Yields `count` events, `delay` seconds apart."""
    STREAM_STATE.update(produced=0, closed=False)
    try:
        for index in range(count):
            STREAM_STATE["produced"] = index + 1
            yield {"index": index}
            await asyncio.sleep(delay)
    finally:
        STREAM_STATE["closed"] = True


def stream_sync(count: int = 3, delay: float = 0.2):
    for index in range(count):
        yield {"index": index, "thread": threading.current_thread().name}
        time.sleep(delay)


async def stream_state() -> dict:
    return dict(STREAM_STATE)


async def raw_bytes() -> bytes:
    return b"\x00\x01binary\xff"


async def custom_response():
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("teapot", status_code=418, headers={"X-Custom": "yes"})


async def numpy_values() -> dict:
    import numpy

    return {"array": numpy.arange(6).reshape(2, 3), "scalar": numpy.float32(1.5), "int": numpy.int64(7)}


def upload(data: bytes, name: str = "unnamed", copies: int = 1) -> dict:
    import hashlib

    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "name": name, "copies": copies}
