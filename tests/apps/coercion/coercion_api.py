# One load-balanced resource for pydantic's lax-mode coercion, body edge cases and the reference's
# known faults. Handlers describe what they received (value and Python type) so that the answer
# shows the conversion itself, not how a return value is encoded.
from datetime import date, datetime
from decimal import Decimal
from typing import Optional, Union

from coercion_models import Part
from runpod_flash import Endpoint
from starlette.requests import Request

api = Endpoint(name="coercion", cpu="cpu3c-1-2", workers=(1, 2))


def described(value):
    plain = isinstance(value, (str, bool)) or value is None or (isinstance(value, int) and abs(value) < 2**63)
    return {"value": value if plain else str(value), "type": type(value).__name__}


@api.post("/int")
async def to_int(x: int) -> dict:
    return described(x)


@api.post("/float")
async def to_float(x: float) -> dict:
    return described(x)


@api.post("/bool")
async def to_bool(x: bool) -> dict:
    return described(x)


@api.post("/str")
async def to_str(x: str) -> dict:
    return described(x)


@api.post("/decimal")
async def to_decimal(x: Decimal) -> dict:
    return described(x)


@api.post("/datetime")
async def to_datetime(x: datetime) -> dict:
    return described(x.isoformat())


@api.post("/date")
async def to_date(x: date) -> dict:
    return described(x.isoformat())


@api.post("/union-int-str")
async def union_int_str(x: Union[int, str]) -> dict:
    return described(x)


@api.post("/union-str-int")
async def union_str_int(x: Union[str, int]) -> dict:
    return described(x)


@api.post("/union-int-float")
async def union_int_float(x: Union[int, float]) -> dict:
    return described(x)


@api.post("/union-bool-int")
async def union_bool_int(x: Union[bool, int]) -> dict:
    return described(x)


@api.post("/optional-float")
async def optional_float(x: Optional[float] = None) -> dict:
    return described(x)


@api.post("/float-echo")
async def float_echo(x: float) -> dict:
    return {"x": x}


@api.get("/q-int")
async def q_int(x: int) -> dict:
    return described(x)


@api.get("/q-float")
async def q_float(x: float) -> dict:
    return described(x)


@api.get("/q-datetime")
async def q_datetime(x: datetime) -> dict:
    return described(x.isoformat())


@api.get("/q-union")
async def q_union(x: Union[int, str]) -> dict:
    return described(x)


@api.post("/parts")
async def parts(items: list[Part]) -> dict:
    return {"types": [type(i).__name__ for i in items], "skus": [i.sku for i in items]}


@api.post("/maybe-part")
async def maybe_part(item: Optional[Part] = None) -> dict:
    return {"type": type(item).__name__}


@api.post("/with-request")
async def with_request(request: Request, x: int) -> dict:
    return {"x": x, "method": request.method}


@api.get("/items/{item_id}")
async def a_item(item_id: int) -> dict:
    return {"item_id": item_id}


@api.get("/items/me")
async def b_items_me() -> dict:
    return {"item_id": "me"}
