"""Binding in process: pydantic's lax rules, FastAPI's markers, startup errors and body parsing.

The compatibility suite (tests/apps/markers, tests/apps/coercion) checks the same behaviour over
TCP against the reference's recorded answers; these tests pin the pieces one at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
from typing import Annotated, Literal, Optional, Union

import msgspec
import pytest
from fastapi import Body, Cookie, Depends, Header, Path, Query, Security
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from runtime.binding import Binder, python_json
from runtime.errors import RequestValidationError, StartupError
from runtime.lax import LaxError, coerce
from runtime.manifest import Route


def _route(method: str, path: str) -> Route:
    return Route(method, path, "app", "handler", "resources.app.functions[0]")


def _bind(
    func,
    method: str = "GET",
    path: str = "/h",
    query: bytes = b"",
    headers=(),
    body: bytes = b"",
    path_params=None,
):
    binder = Binder(func, _route(method, path))
    scope = {
        "type": "http",
        "query_string": query,
        "headers": list(headers),
        "path_params": path_params or {},
    }

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    return asyncio.run(binder.bind(scope, receive, None))


def _error(func, **request) -> dict:
    with pytest.raises(RequestValidationError) as caught:
        _bind(func, **request)
    (entry,) = caught.value.errors
    return entry


# --- pydantic's lax conversion ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (int, True, 1),
        (int, " 5 ", 5),
        (int, "1_000", 1000),
        (int, "007", 7),
        (int, "+7", 7),
        (int, "5.00", 5),
        (float, True, 1.0),
        (float, " 2.5 ", 2.5),
        (float, "1_000.5", 1000.5),
        (bool, 0.0, False),
        (bool, 1.0, True),
        (bool, "T", True),
        (bool, "off", False),
        (decimal.Decimal, " 2.5 ", decimal.Decimal("2.5")),
        (dt.datetime, "2024-01-02", dt.datetime(2024, 1, 2)),
        (dt.date, "2024-01-02T00:00:00", dt.date(2024, 1, 2)),
        (Union[int, str], "5", "5"),
        (Union[int, str], True, 1),
        (Union[bool, int], "1", True),
        (Union[int, float], 5.0, 5.0),
        (Union[int, float], "5.5", 5.5),
        (Optional[int], None, None),
        (list[int], ["1", " 2"], [1, 2]),
        (dict[str, float], {"a": "1_0"}, {"a": 10.0}),
    ],
)
def test_lax_conversion_as_pydantic(annotation, value, expected):
    result = coerce(annotation, value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "value", "error_type"),
    [
        (int, "1e3", "int_parsing"),
        (int, 5.5, "int_from_float"),
        (int, None, "int_type"),
        (bool, " true ", "bool_parsing"),
        (bool, 0.5, "bool_type"),
        (bool, 2, "bool_parsing"),
        (decimal.Decimal, "NaN", "finite_number"),
        (decimal.Decimal, "Infinity", "finite_number"),
        (decimal.Decimal, True, "decimal_type"),
        (decimal.Decimal, "x", "decimal_parsing"),
        (dt.datetime, "2024-13-01", "datetime_from_date_parsing"),
        (dt.date, "2024-01-02T03:04:05", "date_from_datetime_inexact"),
        (dt.datetime, 1e308, "datetime_parsing"),
        (dt.datetime, 10**30, "datetime_parsing"),
        (dt.date, 1e20, "date_from_datetime_parsing"),
        (str, 5, "string_type"),
    ],
)
def test_lax_refusals_carry_pydantic_types(annotation, value, error_type):
    with pytest.raises(LaxError) as caught:
        coerce(annotation, value)
    assert caught.value.type == error_type


def test_lax_error_inside_a_list_names_the_index():
    with pytest.raises(LaxError) as caught:
        coerce(list[int], ["1", "x"])
    assert caught.value.loc == (1,)


# --- markers ------------------------------------------------------------------------------------


def test_header_name_is_hyphenated_and_case_insensitive():
    def handler(x_token: Annotated[str, Header()]):
        return x_token

    assert _bind(handler, headers=[(b"x-token", b"abc")]) == {"x_token": "abc"}
    assert _error(handler, headers=[(b"x_token", b"abc")]) == {
        "type": "missing",
        "loc": ["header", "x-token"],
        "msg": "Field required",
    }


def test_header_alias_and_constraint():
    def handler(key: Annotated[str, Header(alias="X-Api-Key")], n: int = Header(0, le=5)):
        return key

    assert _bind(handler, headers=[(b"x-api-key", b"k"), (b"n", b"5")]) == {"key": "k", "n": 5}
    assert _error(handler, headers=[(b"x-api-key", b"k"), (b"n", b"6")]) == {
        "type": "less_than_equal",
        "loc": ["header", "n"],
        "msg": "Input should be less than or equal to 5",
    }


def test_cookie_values():
    def handler(session: Annotated[str, Cookie()], visits: Annotated[int, Cookie()] = 0):
        return session

    assert _bind(handler, headers=[(b"cookie", b"session=s; visits=3")]) == {
        "session": "s",
        "visits": 3,
    }
    assert _error(handler)["loc"] == ["cookie", "session"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (b"n=0", ("greater_than_equal", "Input should be greater than or equal to 1")),
        (b"n=1&word=a", ("string_too_short", "String should have at least 2 characters")),
        (b"n=1&word=abcdef", ("string_too_long", "String should have at most 5 characters")),
        (b"n=1&word=AB", ("string_pattern_mismatch", "String should match pattern '^[a-z]+$'")),
        (b"n=1&ratio=1", ("less_than", "Input should be less than 1")),
        (b"n=1&ratio=0", ("greater_than", "Input should be greater than 0")),
    ],
)
def test_query_constraints_as_pydantic_tells_them(query, error):
    def handler(
        n: Annotated[int, Query(ge=1)],
        word: Annotated[str, Query(min_length=2, max_length=5, pattern="^[a-z]+$")] = "ab",
        ratio: float = Query(0.5, gt=0, lt=1),
    ):
        return n

    entry = _error(handler, query=query)
    assert (entry["type"], entry["msg"]) == error


def test_integer_lt_is_named_as_declared():
    def handler(item_id: Annotated[int, Path(lt=1000)]):
        return item_id

    entry = _error(handler, path="/items/{item_id}", path_params={"item_id": "1000"})
    assert (entry["type"], entry["loc"]) == ("less_than", ["path", "item_id"])


def test_query_alias_and_field_constraint():
    def handler(
        item_id: Annotated[int, Query(alias="item-id")], n: Annotated[int, Field(le=9)] = 1
    ):
        return item_id

    assert _bind(handler, query=b"item-id=7&n=9") == {"item_id": 7, "n": 9}
    assert _error(handler, query=b"item_id=7")["loc"] == ["query", "item-id"]


class Filters(BaseModel):
    limit: int = Field(10, le=100)
    tags: list[str] = []


def test_query_model_from_the_query_string():
    def handler(f: Annotated[Filters, Query()]):
        return f

    bound = _bind(handler, query=b"limit=20&tags=a&tags=b")["f"]
    assert isinstance(bound, Filters) and (bound.limit, bound.tags) == (20, ["a", "b"])
    assert _error(handler, query=b"limit=101")["loc"] == ["query", "limit"]


async def paging(skip: int = 0, limit: Annotated[int, Query(le=50)] = 10):
    return (skip, limit)


def test_dependency_is_called_with_its_own_parameters():
    def handler(page: Annotated[tuple, Depends(paging)]):
        return page

    assert _bind(handler, query=b"skip=2") == {"page": (2, 10)}
    assert _error(handler, query=b"limit=51")["loc"] == ["query", "limit"]


class Item(BaseModel):
    name: str


def test_embedded_model_is_a_key_of_the_body():
    def handler(item: Annotated[Item, Body(embed=True)]):
        return item

    assert _bind(handler, method="PUT", body=b'{"item": {"name": "pen"}}')["item"] == Item(
        name="pen"
    )
    assert _error(handler, method="PUT", body=b'{"name": "pen"}')["loc"] == ["body", "item"]


def test_wrapped_handler_ignores_annotated_markers_like_the_reference():
    """runpod-flash's generated body model drops Annotated: the value is a body key, unconstrained."""

    def handler(n: Annotated[int, Query(ge=1)], token: Annotated[str, Header()] = "none"):
        return n

    assert _bind(handler, method="POST", body=b'{"n": 0, "token": "t"}') == {"n": 0, "token": "t"}


def test_wrapped_handler_keeps_a_default_marker_constraint():
    def handler(n: int = Query(1, ge=1), label: str = Body("x", max_length=4)):
        return n

    assert _bind(handler, method="POST", body=b"{}") == {"n": 1, "label": "x"}
    assert _error(handler, method="POST", body=b'{"n": 0}')["type"] == "greater_than_equal"


# --- what cannot be served is a startup error naming the route -----------------------------------


def _dep():
    return 1


def _gen_dep():
    yield 1


@pytest.mark.parametrize(
    "handler",
    [
        lambda x=Depends(_dep): (
            x
        ),  # POST without a model: the reference would pass the Depends object
    ],
)
def test_depends_on_a_wrapped_body_handler_is_a_startup_error(handler):
    with pytest.raises(StartupError, match=r"POST /h.*Depends"):
        Binder(handler, _route("POST", "/h"))


def test_unservable_markers_are_startup_errors():
    def generator_dependency(x: Annotated[int, Depends(_gen_dep)]):
        return x

    def security(x: Annotated[int, Security(_dep)]):
        return x

    def stray_path(x: Annotated[int, Path()]):
        return x

    for handler, words in (
        (generator_dependency, "yield"),
        (security, "Security"),
        (stray_path, "Path"),
    ):
        with pytest.raises(StartupError, match=words) as caught:
            Binder(handler, _route("GET", "/h"))
        assert "GET /h" in str(caught.value)


# --- the body as FastAPI parses it ----------------------------------------------------------------


def test_body_with_a_bom_nan_or_utf16_is_read_as_json_loads_reads_it():
    def handler(x: float):
        return x

    assert _bind(handler, method="POST", body=b'\xef\xbb\xbf{"x": 5}') == {"x": 5.0}
    assert _bind(handler, method="POST", body='{"x": 2}'.encode("utf-16")) == {"x": 2.0}
    assert _bind(handler, method="POST", body=b'{"x": Infinity}') == {"x": float("inf")}


def test_invalid_utf8_and_deep_nesting_are_400():
    for body in (b'{"x": "\xff"}', b'{"x": 1, "y": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        with pytest.raises(HTTPException) as caught:
            python_json(body)
        assert caught.value.status_code == 400


def test_json_invalid_position_is_json_loads_position():
    def handler(x: int):
        return x

    assert _error(handler, method="POST", body=b'{"x": 1} x')["loc"] == ["body", 9]


def test_decimal_nan_is_refused_and_unions_are_smart():
    def handler(d: decimal.Decimal = decimal.Decimal(0), u: Union[bool, int] = 0):
        return d

    assert _bind(handler, method="POST", body=b'{"u": "1"}')["u"] is True
    assert _error(handler, method="POST", body=b'{"d": "NaN"}')["type"] == "finite_number"


def test_a_lone_plain_body_parameter_beside_a_query_model_is_a_startup_error():
    """FastAPI would read the whole body as `payload`; serving it as a key would be a wrong answer."""

    def handler(f: Annotated[Filters, Query()], payload: dict):
        return payload

    with pytest.raises(StartupError, match="Body\\(embed=True\\)"):
        Binder(handler, _route("POST", "/h"))


def _reads_body(x: Annotated[int, Body()]):
    return x


def test_a_dependency_reading_the_body_is_a_startup_error():
    def handler(item: Item, x: Annotated[int, Depends(_reads_body)]):
        return x

    with pytest.raises(StartupError, match="POST /h.*dependency parameter 'x'"):
        Binder(handler, _route("POST", "/h"))


def _blocking_dependency() -> str:
    import threading

    return threading.current_thread().name


def test_a_def_dependency_runs_in_the_pool_it_is_given():
    def handler(thread: Annotated[str, Depends(_blocking_dependency)]):
        return thread

    from concurrent.futures import ThreadPoolExecutor

    binder = Binder(handler, _route("GET", "/h"))
    executor = ThreadPoolExecutor(1, thread_name_prefix="deps")

    async def run_sync(call):
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    binder.use_pool(run_sync)
    scope = {"type": "http", "query_string": b"", "headers": [], "path_params": {}}
    try:
        assert asyncio.run(binder.bind(scope, None, None))["thread"].startswith("deps")
    finally:
        executor.shutdown()


def test_constraints_inside_a_union_still_apply():
    def handler(x: Union[Annotated[int, msgspec.Meta(ge=1)], str] = "none"):
        return x

    assert _bind(handler, query=b"x=5") == {"x": "5"}  # smart mode: the string matches exactly
    assert _error(handler, method="POST", body=b'{"x": 0}')["type"] == "greater_than_equal"


def test_constraint_msgspec_cannot_check_is_a_startup_error():
    def handler(price: decimal.Decimal = Query(decimal.Decimal(1), gt=0)):
        return price

    with pytest.raises(StartupError, match="GET /h|handler"):
        Binder(handler, _route("GET", "/h"))


def test_optional_model_is_wrapped_like_the_reference():
    """runpod-flash only leaves a handler unwrapped for a bare model hint; Optional[Model] is a body key."""

    def handler(item: Optional[Item] = None):
        return item

    assert _bind(handler, method="POST", body=b'{"item": {"name": "pen"}}') == {
        "item": Item(name="pen")
    }


def test_union_with_a_literal_is_still_checked():
    def handler(x: Union[Literal["auto"], int] = "auto"):
        return x

    assert _bind(handler, method="POST", body=b'{"x": 3}') == {"x": 3}
    assert _error(handler, method="POST", body=b'{"x": "manual"}')["loc"] == ["body", "x"]


def test_body_read_by_json_loads_keeps_big_integers():
    def handler(x: int):
        return x

    assert _bind(
        handler, method="POST", body=b'\xef\xbb\xbf{"x": 100000000000000000000000000000}'
    ) == {"x": 10**29}
    assert _error(handler, method="POST", body=b'{"x": "\\ud800"}')["type"] == "json_invalid"


def test_startup_error_names_the_route_over_the_entrypoint(tmp_path):
    from support import lb_manifest, run_check, write_app

    app = write_app(
        tmp_path / "app",
        lb_manifest(("api", "price", "GET", "/price")),
        {
            "api.py": "from decimal import Decimal\nfrom fastapi import Query\n\n"
            "def price(p: Decimal = Query(Decimal(1), gt=0)):\n    return p\n",
        },
    )
    result = run_check(app, env={"_ARGS": "--check"})
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "startup error" in output, output
    assert "GET /price" in output and "'p'" in output, output
