"""Results: response models, jsonable_encoder's encoding, streams and their OpenAPI description.

The encoding is checked in process against FastAPI's own `jsonable_encoder` + `JSONResponse`
(installed in the dev venv); the rest over TCP on the `responses` fixture app.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import ipaddress
import json
import pathlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field
from support import Worker

from runtime.encoding import encode
from runtime.errors import ResponseValidationError
from runtime.manifest import Route
from runtime.response_models import ResultPlan, registered_unchanged

APP = Path(__file__).resolve().parent / "apps" / "responses"


# --- encoding, in process ---------------------------------------------------------------------


class Tier(enum.Enum):
    PRO = "pro"


class Aliased(BaseModel):
    user_name: str = Field(serialization_alias="userName")
    at: datetime.datetime


@dataclasses.dataclass
class Pair:
    a: int
    b: decimal.Decimal = decimal.Decimal("0.5")


class Row:
    def __init__(self) -> None:
        self.id = 1
        self.when = datetime.date(2024, 1, 2)


def _nested(depth: int) -> dict:
    value: dict = {"leaf": [1, 2]}
    for _ in range(depth):
        value = {"n": value}
    return value


UTC = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
VALUES = {
    "decimal_frac": decimal.Decimal("1.10"),
    "decimal_int": decimal.Decimal("10"),
    "decimal_exp": decimal.Decimal("1E+2"),
    "timedelta": datetime.timedelta(days=1, microseconds=5),
    "bigint": 2**70,
    "neg_bigint_in_list": [1, -(2**64)],
    "u64": 2**64 - 1,
    "set": {1},
    "frozenset": frozenset({"a"}),
    "deque": collections.deque([1, 2]),
    "tuple": (1, (2, 3)),
    "bytes": b"caf\xc3\xa9",
    "enum": Tier.PRO,
    "path": pathlib.PurePosixPath("/a/b"),
    "uuid": uuid.UUID(int=5),
    "ip": ipaddress.IPv4Address("10.0.0.1"),
    "datetime_utc": UTC,
    "datetime_offset": UTC.astimezone(datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))),
    "datetime_naive": datetime.datetime(2024, 1, 2, 3, 4, 5, 600000),
    "date": datetime.date(2024, 1, 2),
    "time": datetime.time(1, 2, 3),
    "model_by_alias": Aliased(user_name="ann", at=UTC),
    "dataclass": Pair(1),
    "object_attributes": Row(),
    "int_keys": {1: "a", 2: {3: "b"}},
    "deep_300": _nested(300),
    "mixed": {
        "d": decimal.Decimal("2.5"),
        "s": {UTC},
        "big": [2**65, {"t": datetime.timedelta(seconds=3)}],
    },
    "unicode": "h\u00e9llo \u2713",
}


@pytest.mark.parametrize("name", VALUES)
def test_encoding_matches_jsonable_encoder(name):
    from fastapi.encoders import jsonable_encoder
    from starlette.responses import JSONResponse

    value = VALUES[name]
    expected = JSONResponse(jsonable_encoder(value)).body
    assert json.loads(encode(value)) == json.loads(expected)


def test_deep_nesting_past_the_recursion_limit_fails_as_in_the_reference():
    with pytest.raises(RecursionError):
        encode(_nested(sys.getrecursionlimit() + 100))


def test_nan_is_null():
    assert (
        encode({"x": float("nan"), "big": [2**70, float("inf")]})
        == b'{"x":null,"big":[1180591620717411303424,null]}'
    )


# --- which routes have a response model -------------------------------------------------------


class Public(BaseModel):
    id: int


def _route(method: str, path: str = "/r") -> Route:
    return Route(method=method, path=path, module="m", function="f", entry="test")


def get_public() -> Public: ...
def post_scalars(id: int) -> Public: ...
def post_model(query: Public) -> Public: ...
def post_path_only(item_id: int) -> Public: ...
def post_plain(id: int) -> dict: ...
def get_plain() -> dict: ...
def no_annotation(id: int): ...
def get_items() -> Iterator[Public]:
    yield {"id": 1}


def test_registration_follows_create_lb_handler():
    assert registered_unchanged(get_public, _route("GET"))
    assert not registered_unchanged(post_scalars, _route("POST"))  # wrapped in a body model
    assert registered_unchanged(post_model, _route("POST"))  # a pydantic-model parameter
    assert registered_unchanged(
        post_path_only, _route("DELETE", "/r/{item_id}")
    )  # no body parameter


def test_plans():
    assert ResultPlan(get_public, _route("GET")).model is Public
    assert ResultPlan(post_scalars, _route("POST")).model is Public  # the documented deviation
    assert ResultPlan(post_plain, _route("POST")).render is encode  # no model: the fast path
    assert ResultPlan(no_annotation, _route("GET")).render is encode
    assert ResultPlan(get_plain, _route("GET")).model is dict
    assert ResultPlan(get_items, _route("GET")).item_model is Public


def test_model_filters_and_validates():
    plan = ResultPlan(get_public, _route("GET"))
    assert plan.render({"id": "7", "secret": "x"}) == b'{"id":7}'
    with pytest.raises(ResponseValidationError) as info:
        plan.render({"secret": "x"})
    assert info.value.errors[0]["type"] == "missing"


def test_plain_dict_annotation_writes_as_pydantic():
    plan = ResultPlan(get_plain, _route("GET"))
    assert plan.render({"at": UTC}) == b'{"at":"2024-05-06T07:08:09Z"}'  # orjson
    assert plan.render({"d": decimal.Decimal("1.10")}) == b'{"d":"1.10"}'  # pydantic
    with pytest.raises(ResponseValidationError):
        plan.render([1])


def test_values_pydantic_cannot_serialize_are_converted_as_without_a_model():
    import msgspec

    class Box(msgspec.Struct):
        w: int

    plan = ResultPlan(get_plain, _route("GET"))
    assert plan.render(
        {"p": pathlib.PurePosixPath("/a"), "box": Box(2), "d": decimal.Decimal("1.5")}
    ) == (b'{"p":"/a","box":{"w":2},"d":"1.5"}')


# --- over TCP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker():
    with Worker(APP) as w:
        yield w.wait_ready(timeout=90)


def test_failed_response_model_is_a_logged_500(worker):
    r = httpx.get(
        worker.url + "/customer",
        params={"id": 1, "mode": "wrongtype"},
        headers={"X-Request-ID": "resp-check-1"},
    )
    assert r.status_code == 500
    assert r.json() == {
        "detail": "Internal Server Error",
        "error": "ResponseValidationError",
        "request_id": "resp-check-1",
    }
    line = worker.wait_log(
        lambda rec: (
            rec.get("event") == "response validation failed"
            and rec.get("request_id") == "resp-check-1"
        )
    )
    assert line["errors"][0]["loc"] == ["id"] and line["errors"][0]["type"] == "int_parsing"
    assert "not a number" not in json.dumps(line)  # the offending value is not logged


def test_post_model_drops_fields_the_annotation_excludes(worker):
    r = httpx.post(worker.url + "/customer", json={"id": 3})
    assert r.json() == {"id": 3, "name": "Ann", "email": "a@x"}
    assert "secret-hash" not in r.text


def test_post_sync_generator_answers_a_json_array(worker):
    r = httpx.post(worker.url + "/gen", json={"n": 3})
    assert r.headers["content-type"] == "application/json"
    assert r.json() == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_post_sync_generator_streams_events_when_asked(worker):
    r = httpx.post(worker.url + "/gen", json={"n": 2}, headers={"Accept": "text/event-stream"})
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text == 'data: {"i":0}\n\ndata: {"i":1}\n\n'


def test_post_async_generator_streams_json_lines(worker):
    r = httpx.post(worker.url + "/agen", json={"n": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "application/jsonl"
    assert r.text == '{"i":0}\n{"i":1}\n'


def test_typed_stream_items_are_filtered(worker):
    r = httpx.get(worker.url + "/gen-typed", params={"n": 1})
    assert r.headers["content-type"] == "application/jsonl"
    assert r.text == '{"id":0,"name":"c","email":"e"}\n'


def test_openapi_describes_response_models(worker):
    doc = httpx.get(worker.url + "/openapi.json").json()
    schemas = doc["components"]["schemas"]
    customer = doc["paths"]["/customer"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert customer == {"$ref": "#/components/schemas/CustomerPublic"}
    assert set(schemas["CustomerPublic"]["properties"]) == {"id", "name", "email"}
    aliased = doc["paths"]["/aliased"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    name = aliased["$ref"].rsplit("/", 1)[1]
    assert set(schemas[name]["properties"]) == {"userName", "createdBy", "note"}  # written by alias
    listed = doc["paths"]["/customers"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert listed["type"] == "array" and listed["items"] == {
        "$ref": "#/components/schemas/CustomerPublic"
    }
    stream = doc["paths"]["/gen-typed"]["get"]["responses"]["200"]["content"]
    assert stream["application/jsonl"]["x-itemSchema"] == {
        "$ref": "#/components/schemas/CustomerPublic"
    }


def test_stream_item_that_fails_its_model_ends_the_stream(worker):
    """As in the reference: the items before it were sent; the response is cut off, and logged."""
    received = []
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream(
            "GET",
            worker.url + "/gen-typed",
            params={"n": 1, "bad": "true"},
            headers={"X-Request-ID": "resp-stream-1"},
        ) as response:
            for line in response.iter_lines():
                received.append(line)
    assert received[:1] == ['{"id":0,"name":"c","email":"e"}']
    line = worker.wait_log(
        lambda rec: rec.get("request_id") == "resp-stream-1" and rec.get("level") == "error"
    )
    assert "ResponseValidationError" in line["exception"]
