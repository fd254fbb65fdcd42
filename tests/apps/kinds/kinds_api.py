# One load-balanced resource whose routes cover every parameter binding kind and return type.
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, Optional

from kinds_models import Color, Item, Order, Point, Size, Vector
from runpod_flash import Endpoint

api = Endpoint(name="kinds", cpu="cpu3c-1-2", workers=(1, 2))


# --- JSON body: scalars, defaults, Optional, Literal, Enum ---------------------------------------

@api.post("/scalars")
def scalars(i: int, f: float, s: str, b: bool) -> dict:
    """A sync handler: runs in the thread pool."""
    return {"i": i, "f": f, "s": s, "b": b}


@api.post("/defaults")
async def defaults(i: int = 7, f: float = 2.5, s: str = "x", b: bool = False) -> dict:
    return {"i": i, "f": f, "s": s, "b": b}


@api.post("/optional")
async def optional(x: Optional[int], y: Optional[str] = None, z: int | None = 3) -> dict:
    return {"x": x, "y": y, "z": z}


@api.post("/literal")
async def literal(mode: Literal["fast", "slow"], level: Literal[1, 2, 3] = 1) -> dict:
    return {"mode": mode, "level": level}


@api.post("/enum")
async def enums(color: Color, size: Size = Size.M) -> dict:
    return {"color": color, "size": size, "color_is_enum": isinstance(color, Color)}


# --- JSON body: containers --------------------------------------------------------------------

@api.post("/containers")
async def containers(ids: list[int], weights: dict[str, float], matrix: list[list[int]],
                     tags: Optional[list[str]] = None) -> dict:
    return {
        "ids": ids,
        "weights": weights,
        "matrix": matrix,
        "tags": tags,
        "total": sum(ids) + sum(weights.values()) + sum(sum(row) for row in matrix),
    }


# --- JSON body: structured parameters (each is one key of the body) ---------------------------

@api.post("/dataclass")
async def with_dataclass(point: Point, label: str = "p") -> dict:
    return {"point": point, "label": label}


@api.post("/typeddict")
async def with_typeddict(item: Item) -> dict:
    return {"item": item, "value": item["qty"] * 2}


@api.post("/struct")
async def with_struct(vector: Vector, scale: float = 1.0) -> dict:
    return {"x": vector.x * scale, "y": vector.y * scale}


@api.post("/model")
async def with_model(order: Order) -> Order:
    """A pydantic model parameter: the body itself is the model."""
    return Order(sku=order.sku.upper(), qty=order.qty * 2, note=order.note)


# --- GET: query and path parameters -----------------------------------------------------------

@api.get("/search")
async def search(q: str, limit: int = 10, exact: bool = False, since: Optional[int] = None,
                 ratio: float = 0.5) -> dict:
    return {"q": q, "limit": limit, "exact": exact, "since": since, "ratio": ratio}


@api.get("/search_tags")
async def search_tags(tags: list[str], q: str = "") -> dict:
    return {"q": q, "tags": tags}


@api.get("/items/{item_id}")
def get_item(item_id: int, verbose: bool = False) -> dict:
    return {"item_id": item_id, "verbose": verbose}


# --- PUT / PATCH / DELETE with a path parameter -----------------------------------------------

@api.put("/items/{item_id}")
async def put_item(item_id: int, name: str, price: float) -> dict:
    return {"item_id": item_id, "name": name, "price": price}


@api.patch("/items/{item_id}")
async def patch_item(item_id: int, name: Optional[str] = None, price: Optional[float] = None) -> dict:
    return {"item_id": item_id, "name": name, "price": price}


@api.delete("/items/{item_id}")
async def delete_item(item_id: int) -> dict:
    return {"deleted": item_id}


# --- no parameters, sync, errors --------------------------------------------------------------

@api.get("/noparams")
async def noparams() -> dict:
    return {"ok": True}


@api.post("/noparams")
def noparams_post() -> dict:
    return {"ok": True, "sync": True}


@api.post("/fail")
async def fail(x: int = 0) -> dict:
    raise ValueError(f"secret detail {x}")


@api.get("/fail_sync")
def fail_sync() -> dict:
    raise ValueError("secret detail")


# --- return values ----------------------------------------------------------------------------

@dataclass
class Reading:
    sensor: str
    value: float
    at: datetime


FIXED_AT = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=timezone.utc)


@api.get("/returns/datetime")
async def returns_datetime() -> datetime:
    return FIXED_AT


@api.get("/returns/uuid")
async def returns_uuid() -> uuid.UUID:
    return uuid.UUID("12345678-1234-5678-1234-567812345678")


@api.get("/returns/dataclass")
async def returns_dataclass() -> Reading:
    return Reading(sensor="t1", value=21.5, at=FIXED_AT)


@api.get("/returns/none")
async def returns_none() -> None:
    return None


@api.get("/returns/list")
def returns_list() -> list:
    return [1, "two", 3.5, None, True, {"k": [1, 2]}]


@api.get("/returns/now")
async def returns_now() -> dict:
    return {"now": datetime.now(timezone.utc), "id": uuid.uuid4()}


# --- multipart upload -------------------------------------------------------------------------

@api.post("/upload")
async def upload(file: bytes, name: str = "anon", count: int = 1) -> dict:
    return {"size": len(file), "name": name, "count": count, "head": file[:5].decode("latin-1")}
