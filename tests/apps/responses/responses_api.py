# One load-balanced resource whose routes cover return annotations, result encoding and streams.
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Optional

from responses_models import (
    Aliased,
    CustomerPrivate,
    CustomerPublic,
    CustomerQuery,
    ItemTD,
    Level,
    Money,
    PointDC,
    Tier,
)
from runpod_flash import Endpoint
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

api = Endpoint(name="responses", cpu="cpu3c-1-2", workers=(1, 2))

UTC = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
PLUS2 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))


def _nested(depth: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(depth):
        value = {"n": value}
    return value


def _nested_list(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


def value_of(kind: str):
    """The value each `kind` names: what the encoding routes return."""
    values = {
        "datetime_utc": lambda: UTC,
        "datetime_offset": lambda: PLUS2,
        "datetime_naive": lambda: datetime(2024, 5, 6, 7, 8, 9),
        "date": lambda: date(2024, 5, 6),
        "decimal_frac": lambda: Decimal("1.10"),
        "decimal_int": lambda: Decimal("10"),
        "decimal_exp": lambda: Decimal("1E+2"),
        "timedelta": lambda: timedelta(hours=1, seconds=1, microseconds=500000),
        "bigint": lambda: 2**70,
        "neg_bigint": lambda: -(2**64),
        "u64": lambda: 2**64 - 1,
        "set": lambda: {3},
        "frozenset": lambda: frozenset({"a"}),
        "tuple": lambda: (1, "two"),
        "bytes": lambda: b"hello",
        "enum": lambda: Tier.PRO,
        "intenum": lambda: Level.HIGH,
        "path": lambda: PurePosixPath("/tmp/x.txt"),
        "uuid": lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "nan": lambda: math.nan,
        "deep300": lambda: _nested(300),
        "deeplist300": lambda: _nested_list(300),
        "deep5000": lambda: _nested(5000),
        "int_keys": lambda: {1: "a", 2: "b"},
        "unicode": lambda: "héllo ✓",
        "model": lambda: CustomerPrivate(id=1, name="Ann", email="a@x", password_hash="h"),
        "dataclass": lambda: PointDC(1, 2),
        "none": lambda: None,
    }
    return values[kind]()


# --- GET: the return annotation is the response model ----------------------------------------

@api.get("/customer")
def get_customer(id: int, mode: str = "extra") -> CustomerPublic:
    return _customer(id, mode)


def _customer(id: int, mode: str):
    if mode == "extra":
        return {"id": id, "name": "Ann", "email": "a@x", "password_hash": "secret-hash"}
    if mode == "missing":
        return {"id": id, "name": "Ann"}
    if mode == "wrongtype":
        return {"id": "not a number", "name": "Ann", "email": "a@x"}
    if mode == "lax":
        return {"id": str(id), "name": "Ann", "email": "a@x"}
    if mode == "subclass":
        return CustomerPrivate(id=id, name="Ann", email="a@x", password_hash="secret-hash")
    if mode == "model":
        return CustomerPublic(id=id, name="Ann", email="a@x")
    if mode == "object":
        class Row:
            def __init__(self):
                self.id, self.name, self.email, self.password_hash = id, "Ann", "a@x", "secret-hash"
        return Row()
    if mode == "none":
        return None
    return [1, 2]


@api.get("/customers")
async def list_customers(n: int = 2, bad: bool = False) -> list[CustomerPublic]:
    rows = [{"id": i, "name": f"c{i}", "email": "e", "password_hash": "secret-hash"} for i in range(n)]
    if bad:
        rows.append({"id": "x"})
    return rows


@api.get("/maybe")
async def maybe_customer(found: bool = True) -> Optional[CustomerPublic]:
    if not found:
        return None
    return {"id": 1, "name": "Ann", "email": "a@x", "password_hash": "secret-hash"}


@api.get("/maybe-union")
async def maybe_union(found: bool = True) -> CustomerPublic | None:
    return {"id": 2, "name": "Bo", "email": "b@x", "token": "t"} if found else None


@api.get("/aliased")
async def aliased(by: str = "alias") -> Aliased:
    if by == "alias":
        return {"userName": "ann", "created_by": "sys", "extra": 1}
    if by == "name":
        return {"user_name": "ann", "created_by": "sys"}
    return Aliased(userName="ann", created_by="sys", note="n")


@api.get("/dataclass")
async def get_dataclass(mode: str = "dict") -> PointDC:
    if mode == "dict":
        return {"x": 1, "y": 2, "z": 3}
    if mode == "instance":
        return PointDC(4)
    return {"y": 1}


@api.get("/typeddict")
async def get_typeddict(mode: str = "extra") -> ItemTD:
    if mode == "extra":
        return {"sku": "a", "qty": 2, "cost": 9}
    if mode == "lax":
        return {"sku": "a", "qty": "3"}
    return {"sku": "a"}


@api.get("/money")
async def money() -> Money:
    return Money(amount=Decimal("1.10"), elapsed=timedelta(minutes=90), at=UTC)


@api.get("/annotated-dict")
def annotated_dict(kind: str) -> dict:
    return {"v": value_of(kind)}


@api.get("/annotated-decimal")
def annotated_decimal() -> Decimal:
    return Decimal("2.50")


@api.get("/annotated-int")
def annotated_int(value: str = "5") -> int:
    return value


@api.get("/plain")
def plain(kind: str):
    """No return annotation: no response model, the result as jsonable_encoder makes it."""
    return {"v": value_of(kind)}


@api.get("/bare")
def bare(kind: str):
    return value_of(kind)


# --- GET: responses and streams --------------------------------------------------------------

@api.get("/text")
async def text() -> PlainTextResponse:
    return PlainTextResponse("plain words")


@api.get("/custom-status")
async def custom_status() -> Response:
    return JSONResponse({"created": True}, status_code=201)


@api.get("/sse-response")
async def sse_response():
    async def events():
        for i in range(2):
            yield f"data: {i}\n\n"
    return StreamingResponse(events(), media_type="text/event-stream")


@api.get("/gen")
def gen(n: int = 3):
    for i in range(n):
        yield {"i": i, "at": UTC}


@api.get("/agen")
async def agen(n: int = 3):
    for i in range(n):
        yield {"i": i, "sq": i * i}


@api.get("/gen-typed")
def gen_typed(n: int = 2, bad: bool = False) -> Iterator[CustomerPublic]:
    for i in range(n):
        yield {"id": i, "name": "c", "email": "e", "password_hash": "secret-hash"}
    if bad:
        yield {"id": "x"}


@api.get("/agen-typed")
async def agen_typed(n: int = 2) -> AsyncIterator[ItemTD]:
    for i in range(n):
        yield {"sku": f"s{i}", "qty": i, "cost": 1}


@api.get("/gen-values")
async def gen_values():
    yield Decimal("1.10")
    yield UTC
    yield 2**70
    yield "text"
    yield None


# --- POST: body-parameter handlers are wrapped by create_lb_handler (no response model there) -

@api.post("/customer")
def post_customer(id: int, mode: str = "extra") -> CustomerPublic:
    return _customer(id, mode)


@api.post("/customer-model")
def post_customer_model(query: CustomerQuery) -> CustomerPublic:
    """A pydantic-model parameter: registered unchanged, so the response model applies."""
    return _customer(query.id, query.mode)


@api.post("/customer-noparams")
async def post_customer_noparams() -> CustomerPublic:
    return {"id": 9, "name": "Ann", "email": "a@x", "password_hash": "secret-hash"}


@api.post("/customers")
async def post_customers(n: int = 2) -> list[CustomerPublic]:
    return [{"id": i, "name": "c", "email": "e", "password_hash": "secret-hash"} for i in range(n)]


@api.post("/aliased")
async def post_aliased(user: str) -> Aliased:
    return {"userName": user, "created_by": "sys"}


@api.post("/dataclass")
async def post_dataclass(x: int) -> PointDC:
    return {"x": x, "y": 2, "z": 3}


@api.post("/typeddict")
async def post_typeddict(sku: str) -> ItemTD:
    return {"sku": sku, "qty": 1, "cost": 9}


@api.post("/values")
def post_values(kind: str) -> dict:
    return {"v": value_of(kind)}


@api.post("/bare")
async def post_bare(kind: str):
    return value_of(kind)


@api.post("/gen")
def post_gen(n: int = 3):
    for i in range(n):
        yield {"i": i}


@api.post("/agen")
async def post_agen(n: int = 3):
    for i in range(n):
        yield {"i": i}


@api.post("/gen-model")
def post_gen_model(query: CustomerQuery):
    for i in range(query.id):
        yield {"i": i}
