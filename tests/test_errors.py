"""The exception table (runtime/errors.py) in process: each runtime exception's status, headers
and body, as the table gives them and as they go out through the router and the middleware."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from support import lb_manifest, write_app

from runtime.errors import (
    BodyTooLarge,
    HandlerTimeout,
    Overloaded,
    RequestValidationError,
    ResponseValidationError,
    answer,
    internal_error,
)
from runtime.health import Health
from runtime.metrics import NoMetrics
from runtime.middleware import RequestContext
from runtime.routing import RoutedApp, RouteEntry

ERRORS = [{"type": "missing", "loc": ["body", "y"], "msg": "Field required"}]
INTERNAL = {"detail": "Internal Server Error", "error": "ValueError", "request_id": "rid-7"}


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RequestValidationError(ERRORS), (422, None, {"detail": ERRORS})),
        (
            BodyTooLarge(100),
            (413, None, {"detail": "Request body exceeds the limit of 100 bytes", "limit": 100}),
        ),
        (HTTPException(413, detail="too many images"), (413, None, {"detail": "too many images"})),
        (
            HTTPException(401, detail="no", headers={"WWW-Authenticate": "Bearer"}),
            (401, {"WWW-Authenticate": "Bearer"}, {"detail": "no"}),
        ),
        (HTTPException(404), (404, None, {"detail": "Not Found"})),
        (
            HandlerTimeout(2.5),
            (504, None, {"detail": "The handler did not finish within 2.5 seconds"}),
        ),
        (
            HandlerTimeout(330.0, slot_outlives_call=True),
            (504, None, {"detail": "The handler did not finish within 330 seconds"}),
        ),
        (
            Overloaded(),
            (503, {"Retry-After": "1"}, {"detail": "The worker is at capacity; retry shortly"}),
        ),
        (
            Overloaded(retry_after=7),
            (503, {"Retry-After": "7"}, {"detail": "The worker is at capacity; retry shortly"}),
        ),
        (ClientDisconnect(), (400, None, {"detail": "Client disconnected"})),
        (ValueError("a secret"), (500, None, INTERNAL)),
        (
            ResponseValidationError([]),
            (500, None, {**INTERNAL, "error": "ResponseValidationError"}),
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_each_exception_has_its_answer(exc, expected):
    assert answer(exc, "rid-7") == expected


def test_a_subclass_gets_its_nearest_listed_base_answer():
    class Teapot(HTTPException):
        pass

    class Late(HandlerTimeout):
        pass

    assert answer(Teapot(418), "") == (418, None, {"detail": "I'm a Teapot"})
    assert answer(Late(1), "")[0] == 504


def test_the_500_names_the_class_only_whatever_the_exception():
    for exc in (ValueError("password=hunter2"), ClientDisconnect(), Overloaded()):
        status, headers, body = internal_error(exc, "rid-7")
        assert (status, headers) == (500, None)
        assert body == {
            "detail": "Internal Server Error",
            "error": type(exc).__name__,
            "request_id": "rid-7",
        }
        assert "hunter2" not in json.dumps(body)


# --- on the wire, through the router and the middleware ------------------------------------


def _app(raises: BaseException | None = None, cap: int = 100) -> RequestContext:
    async def endpoint(scope, receive, send):
        if raises is not None:
            raise raises
        raise AssertionError("unreachable")

    async def reads_body(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        raise AssertionError("the cap should have stopped the body")

    entries = [RouteEntry("/raise", "GET", endpoint), RouteEntry("/body", "POST", reads_body)]
    return RequestContext(RoutedApp(entries), Health(), NoMetrics(), cap)


def _call(
    app,
    method: str = "GET",
    path: str = "/raise",
    chunks: tuple[bytes, ...] = (b"",),
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict] = []
    queue = list(chunks)

    async def receive():
        body = queue.pop(0) if queue else b""
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-request-id", b"rid-7"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    names = [name for name, _ in start["headers"]]
    assert len(names) == len(set(names)), f"a header sent twice: {names}"
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"]


@pytest.mark.parametrize(
    ("exc", "status", "extra", "body"),
    [
        (
            RequestValidationError(ERRORS),
            422,
            {},
            b'{"detail":[{"type":"missing","loc":["body","y"],"msg":"Field required"}]}',
        ),
        (HTTPException(413, detail="too many images"), 413, {}, b'{"detail":"too many images"}'),
        (
            HTTPException(401, headers={"WWW-Authenticate": "Bearer"}),
            401,
            {"www-authenticate": "Bearer"},
            b'{"detail":"Unauthorized"}',
        ),
        (
            HandlerTimeout(0.5),
            504,
            {},
            b'{"detail":"The handler did not finish within 0.5 seconds"}',
        ),
        (
            Overloaded(),
            503,
            {"retry-after": "1"},
            b'{"detail":"The worker is at capacity; retry shortly"}',
        ),
        (ClientDisconnect(), 400, {}, b'{"detail":"Client disconnected"}'),
        (
            KeyError("secret"),
            500,
            {},
            b'{"detail":"Internal Server Error","error":"KeyError","request_id":"rid-7"}',
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_an_endpoints_exception_is_answered_from_the_table(exc, status, extra, body):
    got_status, headers, got_body = _call(_app(exc))
    assert (got_status, got_body) == (status, body)
    assert headers == {
        **extra,
        "content-length": str(len(body)),
        "content-type": "application/json",
        "x-request-id": "rid-7",
    }


def test_a_204_or_304_from_an_endpoint_has_no_body_and_no_content_headers():
    assert _call(_app(HTTPException(204))) == (204, {"x-request-id": "rid-7"}, b"")
    assert _call(_app(HTTPException(304, headers={"ETag": '"v1"'}))) == (
        304,
        {"etag": '"v1"', "x-request-id": "rid-7"},
        b"",
    )


def test_a_declared_length_over_the_cap_is_413_with_the_limit():
    status, headers, body = _call(
        _app(), "POST", "/body", (b"x" * 101,), ((b"content-length", b"101"),)
    )
    assert (status, json.loads(body)) == (
        413,
        {"detail": "Request body exceeds the limit of 100 bytes", "limit": 100},
    )
    assert headers["content-type"] == "application/json" and headers["x-request-id"] == "rid-7"


def test_a_streamed_body_over_the_cap_is_413_with_the_limit():
    status, _, body = _call(
        _app(), "POST", "/body", (b"x" * 60, b"x" * 60), ((b"transfer-encoding", b"chunked"),)
    )
    assert (status, json.loads(body)) == (
        413,
        {"detail": "Request body exceeds the limit of 100 bytes", "limit": 100},
    )


def test_an_app_failing_before_it_answers_gets_the_same_500_shape():
    async def broken(scope, receive, send):
        raise RuntimeError("a secret")

    app = RequestContext(broken, Health(), NoMetrics(), 100)
    status, _, body = _call(app)
    assert (status, json.loads(body)) == (
        500,
        {"detail": "Internal Server Error", "error": "RuntimeError", "request_id": "rid-7"},
    )


def test_unknown_route_and_wrong_method_are_answered_from_the_table():
    assert _call(_app(), "GET", "/nowhere") == (
        404,
        {"content-length": "22", "content-type": "application/json", "x-request-id": "rid-7"},
        b'{"detail":"Not Found"}',
    )
    status, headers, body = _call(_app(), "DELETE", "/raise")
    assert (status, headers["allow"], body) == (
        405,
        "GET, HEAD",
        b'{"detail":"Method Not Allowed"}',
    )


# --- through a real handler ----------------------------------------------------------------

HANDLERS = '''
from starlette.exceptions import HTTPException

async def own_413(count: int) -> dict:
    raise HTTPException(status_code=413, detail="too many images")

async def boom() -> dict:
    raise ValueError("a secret")

async def upload(data: bytes) -> dict:
    return {"size": len(data)}
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from runtime.app import build_routed_app
    from runtime.boot import load_application
    from runtime.handlers import SyncPool
    from runtime.limits import Limiter
    from runtime.settings import Settings

    folder = write_app(
        tmp_path_factory.mktemp("errors") / "app",
        lb_manifest(
            ("api", "own_413", "POST", "/own-413"),
            ("api", "boom", "GET", "/boom"),
            ("api", "upload", "POST", "/upload"),
        ),
        {"api.py": HANDLERS},
    )
    settings = Settings.from_env({"FLASH_MODULE_PATH": str(folder), "FLASH_MAX_BODY_BYTES": "100"})
    pool = SyncPool(1)
    loaded = load_application(settings, pool, Limiter(0, 0))
    yield build_routed_app(loaded.handlers, settings, Health(), NoMetrics())
    pool.shutdown()


def test_a_handlers_own_http_exception_413_keeps_its_detail(served):
    status, _, body = _call(
        served, "POST", "/own-413", (b'{"count": 3}',), ((b"content-length", b"12"),)
    )
    assert (status, json.loads(body)) == (413, {"detail": "too many images"})


def test_a_handler_that_raised_gets_the_500_shape(served):
    status, _, body = _call(served, "GET", "/boom")
    assert (status, json.loads(body)) == (
        500,
        {"detail": "Internal Server Error", "error": "ValueError", "request_id": "rid-7"},
    )


def test_a_streamed_multipart_body_over_the_cap_is_413_not_a_form_error(served):
    part = (
        b'--B\r\nContent-Disposition: form-data; name="data"; filename="a"\r\n\r\n'
        + b"x" * 300
        + b"\r\n--B--\r\n"
    )
    status, _, body = _call(
        served,
        "POST",
        "/upload",
        (part[:60], part[60:]),
        ((b"transfer-encoding", b"chunked"), (b"content-type", b"multipart/form-data; boundary=B")),
    )
    assert (status, json.loads(body)) == (
        413,
        {"detail": "Request body exceeds the limit of 100 bytes", "limit": 100},
    )
