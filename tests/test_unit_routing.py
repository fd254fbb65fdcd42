"""The router in process: static and templated paths, methods, 404/405 decisions, path params."""

from __future__ import annotations

import asyncio
import json

import pytest

from runtime.routing import RoutedApp, RouteEntry, Router


async def _endpoint(scope, receive, send):  # never called by Router.match
    raise AssertionError("not called")


def _entry(method: str, path: str) -> RouteEntry:
    return RouteEntry(path, method, _endpoint)


ROUTES = [
    _entry("GET", "/items/{item_id}"),  # templated first: a static route must still win
    _entry("GET", "/items/me"),
    _entry("PUT", "/items/{item_id}"),
    _entry("POST", "/items"),
    _entry("GET", "/files/{name:path}"),
    _entry("GET", "/users/{user_id:int}/posts/{slug}"),
    _entry("DELETE", "/"),
]


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(ROUTES)


def _found(router: Router, method: str, path: str) -> tuple[str, str, dict]:
    entry, params, allowed = router.match(method, path)
    assert entry is not None and allowed == (), (method, path, allowed)
    return entry.method, entry.path, params


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("POST", "/items", ("POST", "/items", {})),
        ("GET", "/items/me", ("GET", "/items/me", {})),
        ("GET", "/items/7", ("GET", "/items/{item_id}", {"item_id": "7"})),
        ("PUT", "/items/7", ("PUT", "/items/{item_id}", {"item_id": "7"})),
        ("GET", "/files/a/b/c.txt", ("GET", "/files/{name:path}", {"name": "a/b/c.txt"})),
        (
            "GET",
            "/users/42/posts/hello",
            ("GET", "/users/{user_id:int}/posts/{slug}", {"user_id": 42, "slug": "hello"}),
        ),
        ("DELETE", "/", ("DELETE", "/", {})),
    ],
)
def test_a_request_finds_its_route_and_path_params(router, method, path, expected):
    assert _found(router, method, path) == expected


def test_a_static_route_wins_over_a_template_listed_before_it(router):
    assert _found(router, "GET", "/items/me")[1] == "/items/me"
    # A method the static route lacks does not fall through to the template.
    assert router.match("PUT", "/items/me")[2] == ("GET", "HEAD")


def test_a_path_param_does_not_match_across_segments(router):
    assert router.match("GET", "/items/7/extra") == (None, {}, ())


def test_a_convertor_that_does_not_match_is_no_route(router):
    assert router.match("GET", "/users/abc/posts/hello") == (None, {}, ())


def test_head_is_served_by_the_get_route(router):
    assert _found(router, "HEAD", "/items/7") == ("GET", "/items/{item_id}", {"item_id": "7"})


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("DELETE", "/items", ("POST",)),
        ("POST", "/items/7", ("GET", "HEAD", "PUT")),
        ("GET", "/", ("DELETE",)),
    ],
)
def test_a_known_path_with_another_method_lists_the_allowed_ones(router, method, path, allowed):
    entry, _, got = router.match(method, path)
    assert entry is None and got == allowed


@pytest.mark.parametrize("path", ["/nowhere", "/items/", "/Items", ""])
def test_an_unknown_path_is_no_route_and_no_methods(router, path):
    assert router.match("GET", path) == (None, {}, ())


def test_the_first_entry_for_a_method_and_path_wins():
    first, second = _entry("GET", "/a"), _entry("GET", "/a")
    assert Router([first, second]).match("GET", "/a")[0] is first


# --- the answers RoutedApp gives when no route matches -------------------------------------------


def _call(
    app: RoutedApp, method: str, path: str, query: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [],
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture(scope="module")
def app() -> RoutedApp:
    return RoutedApp(ROUTES)


def test_unknown_route_is_404_not_found(app):
    status, _, body = _call(app, "GET", "/nowhere")
    assert (status, json.loads(body)) == (404, {"detail": "Not Found"})


def test_wrong_method_is_405_with_allow(app):
    status, headers, body = _call(app, "PATCH", "/items/7")
    assert (status, json.loads(body), headers["allow"]) == (
        405,
        {"detail": "Method Not Allowed"},
        "GET, HEAD, PUT",
    )


def test_a_trailing_slash_redirects_to_the_route_keeping_the_query(app):
    status, headers, _ = _call(app, "POST", "/items/", b"a=1")
    assert (status, headers["location"]) == (307, "/items?a=1")


def test_a_found_route_gets_its_path_params_and_template_in_the_scope():
    seen = {}

    async def endpoint(scope, receive, send):
        from starlette.responses import Response

        seen.update(params=scope["path_params"], route=scope["route_path"])
        return Response(b"ok")

    status, _, body = _call(
        RoutedApp([RouteEntry("/items/{item_id}", "GET", endpoint)]), "GET", "/items/9"
    )
    assert (status, body) == (200, b"ok")
    assert seen == {"params": {"item_id": "9"}, "route": "/items/{item_id}"}
