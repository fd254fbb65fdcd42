"""The HTTP contract over TCP against the real entrypoint: statuses, bodies, binding kinds."""

from __future__ import annotations

import json

import httpx
import pytest
from support import CORE_APP, Worker


@pytest.fixture(scope="module")
def client(core_worker):
    with httpx.Client(base_url=core_worker.url, timeout=10) as c:
        yield c


def detail(response: httpx.Response) -> dict:
    body = response.json()
    assert isinstance(body["detail"], list) and len(body["detail"]) == 1, body
    return body["detail"][0]


# --- success and binding kinds -------------------------------------------------------------


def test_scalars_with_defaults(client):
    r = client.post("/scalars", json={"y": 3})
    assert r.status_code == 200
    assert r.json() == {"y": 3, "ratio": 1.5, "name": "anon", "flag": False}


def test_lax_conversion_accepts_what_the_reference_accepts(client):
    r = client.post("/scalars", json={"y": "5", "ratio": "2.5", "flag": "true"})
    assert r.status_code == 200
    assert r.json() == {"y": 5, "ratio": 2.5, "name": "anon", "flag": True}


def test_unknown_keys_are_ignored(client):
    r = client.post("/scalars", json={"y": 1, "unexpected": [1, 2]})
    assert r.status_code == 200 and r.json()["y"] == 1


def test_literal_enum_optional(client):
    r = client.post("/options", json={"mode": "fast", "color": "green", "tags": ["a"]})
    assert r.status_code == 200
    assert r.json() == {"mode": "fast", "color": "green", "note": None, "tags": ["a"]}


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"mode": "medium", "color": "red"}, ["body", "mode"]),
        ({"mode": "fast", "color": "blue"}, ["body", "color"]),
        ({"mode": "fast", "color": "red", "tags": "notalist"}, ["body", "tags"]),
    ],
)
def test_literal_enum_optional_invalid(client, body, loc):
    r = client.post("/options", json=body)
    assert r.status_code == 422
    assert detail(r)["loc"] == loc


def test_containers(client):
    body = {"numbers": [1, "2", 3], "weights": {"a": 0.5}, "matrix": [[1, 2], [3, 4]]}
    r = client.post("/containers", json=body)
    assert r.status_code == 200
    assert r.json() == {"total": 6, "weights": {"a": 0.5}, "matrix": [[1, 2], [3, 4]]}


def test_nested_container_error_location(client):
    r = client.post("/containers", json={"numbers": [], "weights": {}, "matrix": [[1, "x"]]})
    assert r.status_code == 422
    error = detail(r)
    assert error["loc"] == ["body", "matrix", 0, 1]
    assert error["type"] == "int_parsing"


def test_dataclass_typeddict_struct(client):
    body = {
        "point": {"x": "1"},
        "person": {"name": "ada", "age": 36},
        "box": {"width": 2, "height": 3},
    }
    r = client.post("/structured", json=body)
    assert r.status_code == 200
    assert r.json() == {
        "point": {"x": 1, "y": 0},
        "person": {"name": "ada", "age": 36},
        "area": 6.0,
        "box": {"width": 2.0, "height": 3.0, "label": "box"},
    }


def test_struct_missing_field_location(client):
    body = {"point": {"x": 1}, "person": {"name": "ada"}, "box": {"width": 2, "height": 3}}
    r = client.post("/structured", json=body)
    assert r.status_code == 422
    assert detail(r) | {"msg": None} == {
        "type": "missing",
        "loc": ["body", "person", "age"],
        "msg": None,
    }


def test_get_query_parameters(client):
    r = client.get(
        "/search",
        params=[("q", "cats"), ("limit", "3"), ("tags", "a"), ("tags", "b"), ("exact", "false")],
    )
    assert r.status_code == 200
    assert r.json() == {"q": "cats", "limit": 3, "tags": ["a", "b"], "exact": False}


def test_get_query_defaults(client):
    r = client.get("/search", params={"q": "x"})
    assert r.json() == {"q": "x", "limit": 10, "tags": [], "exact": None}


def test_get_query_invalid(client):
    r = client.get("/search", params={"q": "x", "limit": "many"})
    assert r.status_code == 422
    assert detail(r)["loc"] == ["query", "limit"]
    r = client.get("/search")
    assert r.status_code == 422
    assert detail(r)["loc"] == ["query", "q"] and detail(r)["type"] == "missing"


def test_path_parameter_converted(client):
    r = client.get("/items/42", params={"verbose": "1"})
    assert r.status_code == 200
    assert r.json() == {"item_id": 42, "verbose": True}


def test_path_parameter_invalid(client):
    r = client.get("/items/forty-two")
    assert r.status_code == 422
    assert detail(r)["loc"] == ["path", "item_id"]


def test_put_sync_handler_runs_in_pool_with_path_and_body(client):
    r = client.put("/items/7", json={"name": "seven"})
    assert r.status_code == 200
    body = r.json()
    assert body["item_id"] == 7 and body["name"] == "seven"
    assert body["thread"].startswith("handler")  # a pool thread, never the event loop's


def test_patch_and_delete(client):
    assert client.patch("/items/3", json={"fields": {"a": 1}}).json() == {
        "item_id": 3,
        "fields": {"a": 1},
    }
    assert client.delete("/items/3").json() == {"deleted": 3}


def test_handler_without_parameters_ignores_the_body(client):
    r = client.post("/no-params", content=b"{not json at all")
    assert r.status_code == 200 and r.json() == {"ok": True}


def test_return_values_are_encoded(client):
    r = client.get("/values")
    assert r.status_code == 200
    assert r.json() == {
        "when": "2026-01-02T03:04:05Z",
        "id": "12345678-1234-5678-1234-567812345678",
        "point": {"x": 1, "y": 2},
        "box": {"width": 2.0, "height": 3.0, "label": "box"},
        "nothing": None,
        "list": [1, "a", None],
    }
    assert r.headers["content-type"] == "application/json"


def test_none_is_json_null(client):
    r = client.get("/nothing")
    assert r.status_code == 200 and r.content == b"null"


# --- the status table ------------------------------------------------------------------------


def test_malformed_json_is_422_json_invalid(client):
    r = client.post("/scalars", content=b'{"y": 1', headers={"content-type": "application/json"})
    assert r.status_code == 422
    error = detail(r)
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"


def test_missing_parameter_is_422_with_location(client):
    r = client.post("/scalars", json={})
    assert r.status_code == 422
    assert detail(r) == {"type": "missing", "loc": ["body", "y"], "msg": "Field required"}


def test_invalid_parameter_is_422(client):
    r = client.post("/scalars", json={"y": "abc"})
    assert r.status_code == 422
    assert detail(r)["loc"] == ["body", "y"] and detail(r)["type"] == "int_parsing"


def test_body_that_is_not_an_object_is_422(client):
    r = client.post("/scalars", json=[1, 2])
    assert r.status_code == 422
    assert detail(r)["loc"] == ["body"]


def test_unknown_route_is_404(client):
    r = client.get("/does-not-exist")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}


def test_wrong_method_is_405_with_allow(client):
    r = client.get("/scalars")
    assert r.status_code == 405
    assert r.json() == {"detail": "Method Not Allowed"}
    assert r.headers["allow"] == "POST"


def test_handler_error_is_500_without_the_message(client, core_worker):
    r = client.post("/boom", json={}, headers={"X-Request-ID": "req-boom-1"})
    assert r.status_code == 500
    assert r.json() == {
        "detail": "Internal Server Error",
        "error": "ValueError",
        "request_id": "req-boom-1",
    }
    assert "secret" not in r.text
    # The traceback goes to the log, with the request id.
    error = core_worker.wait_log(
        lambda line: (
            line.get("event") == "handler raised" and line.get("request_id") == "req-boom-1"
        )
    )
    assert "secret detail" in error["exception"]


def test_request_id_is_echoed_or_generated(client):
    r = client.post("/scalars", json={"y": 1}, headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = {client.post("/scalars", json={"y": 1}).headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3 and all(len(value) == 32 for value in generated)
    for response in (
        client.get("/nowhere"),
        client.get("/scalars"),
        client.post("/scalars", json={}),
    ):
        assert response.headers.get("x-request-id")


def test_ping_is_healthy(client):
    r = client.get("/ping")
    assert r.status_code == 200 and r.json() == {"status": "healthy"}
    assert r.headers.get("x-request-id")


def test_connection_stays_usable_after_an_answer_that_did_not_read_the_body(core_worker):
    """A 404 to a POST whose body arrives after its headers must not break the keep-alive connection."""
    import socket
    import time

    from support import read_response

    with socket.create_connection(("127.0.0.1", core_worker.port)) as sock:
        sock.settimeout(5)
        body = b'{"y": 1}'
        sock.sendall(
            b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        time.sleep(0.1)  # pacing, not a wait: the server reads the head before the body arrives
        sock.sendall(body)
        assert read_response(sock)[0] == 404
        sock.sendall(
            b"POST /scalars HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        status, _, payload = read_response(sock)
        assert status == 200 and b'"y":1' in payload


def test_body_invalid_after_the_first_validation_error_is_422(client):
    r = client.post("/scalars", content=b"9 garbage")
    assert r.status_code == 422 and detail(r)["type"] == "json_invalid"


def test_body_that_is_not_utf8_is_400_as_in_the_reference(client):
    """FastAPI reads the body with json.loads, whose UnicodeDecodeError it answers with 400."""
    r = client.post("/scalars", content=b"9\xff\xfe garbage")
    assert r.status_code == 400 and r.json() == {"detail": "There was an error parsing the body"}
    assert "traceback" not in r.text.lower()


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_client_gone_mid_body_is_an_access_line_not_an_error(server):
    """A client that closes its connection before sending the declared body is not a server fault."""
    import socket

    from support import CORE_APP, Worker

    with Worker(CORE_APP, env={"FLASH_SERVER": server, "FLASH_METRICS": "1"}) as worker:
        worker.wait_ready()
        with socket.create_connection(("127.0.0.1", worker.port)) as sock:
            sock.sendall(
                b"POST /scalars HTTP/1.1\r\nHost: x\r\nX-Request-ID: gone-mid-body\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"y\": 1"
            )
            worker.wait_gauges(in_flight=1)  # the server has the request and waits for its body
        line = worker.wait_log(
            lambda line: line.get("request_id") == "gone-mid-body" and line["event"] == "request"
        )
        assert line["status"] == 400
        assert worker.wait_log(lambda line: line["event"].startswith("client disconnected"))
        assert not [line for line in worker.logs() if line["level"] == "error"]
        assert httpx.post(worker.url + "/scalars", json={"y": 1}).status_code == 200


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_a_websocket_upgrade_gets_a_404_json_answer(server):
    """Flash apps have no WebSocket routes: an upgrade is refused like an unknown route, not a 500."""
    import socket

    with Worker(CORE_APP, env={"FLASH_SERVER": server}) as worker:
        worker.wait_ready()
        with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
            sock.sendall(
                b"GET /scalars HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 404"), answer
        assert b"x-request-id:" in head.lower()
        assert json.loads(body) == {"detail": "Not Found"}
        worker.stop()  # every line the refusal could log is printed by now
        assert not [line for line in worker.logs() if line["level"] in ("error", "critical")], (
            worker.output()
        )


OK_PART = (
    b'--B\r\nContent-Disposition: form-data; name="data"; filename="a"\r\n\r\nxyz\r\n--B--\r\n'
)


@pytest.mark.parametrize(
    "body, content_type, detail",
    [
        (OK_PART, "multipart/form-data", "Missing boundary in multipart."),
        (OK_PART, "multipart/form-data; boundary=C", None),
        (b'--B\r\nX: y\r\n\r\nxyz\r\n--B--\r\n', "multipart/form-data; boundary=B", None),
        (
            b'--B\r\nContent-Disposition: form-data; name="'
            + b"n" * 1_000_000
            + b'"\r\n\r\nx\r\n--B--\r\n',
            "multipart/form-data; boundary=B",
            None,
        ),
        (
            b'--B\r\nContent-Disposition: form-data; name="data"\r\nX-H: '
            + b"h" * 1_000_000
            + b'\r\n\r\nx\r\n--B--\r\n',
            "multipart/form-data; boundary=B",
            None,
        ),
        (
            b"".join(
                b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i
                for i in range(5000)
            )
            + OK_PART,
            "multipart/form-data; boundary=B",
            "Too many fields. Maximum number of fields is 1000.",
        ),
        (
            b"&".join(b"f%d=v" % i for i in range(100_000)),
            "application/x-www-form-urlencoded",
            "Too many fields. Maximum number of fields is 1000.",
        ),
    ],
    ids=[
        "no-boundary",
        "wrong-boundary",
        "no-disposition",
        "1MB-name",
        "1MB-part-header",
        "5000-parts",
        "100k-urlencoded",
    ],
)
def test_malformed_or_oversized_forms_are_400_not_500(client, body, content_type, detail):
    """What FastAPI answers: 400 with the form parser's message; the part and field limits are the
    FLASH_MAX_FORM_* settings."""
    response = client.post("/upload", content=body, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    if detail is not None:
        assert response.json()["detail"] == detail


def test_the_form_limits_are_settings():
    parts = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(20)
    )
    with Worker(CORE_APP, env={"FLASH_MAX_FORM_FIELDS": "10"}) as worker:
        worker.wait_ready()
        response = httpx.post(
            worker.url + "/upload",
            content=parts + OK_PART,
            headers={"content-type": "multipart/form-data; boundary=B"},
        )
    assert response.status_code == 400
    assert response.json() == {"detail": "Too many fields. Maximum number of fields is 10."}


def test_a_handlers_own_413_keeps_its_detail(tmp_path):
    """Only the runtime's body cap answers with the cap's body; an HTTPException(413) raised by a
    handler is answered with its own detail, as FastAPI does."""
    from support import lb_manifest, write_app

    app = write_app(
        tmp_path / "app",
        lb_manifest(("images", "add", "POST", "/images")),
        {
            "images.py": (
                "from starlette.exceptions import HTTPException\n\n"
                "async def add(count: int) -> dict:\n"
                "    raise HTTPException(status_code=413, detail='too many images')\n"
            )
        },
    )
    with Worker(app, env={"FLASH_MAX_BODY_BYTES": "100"}) as worker:
        worker.wait_ready()
        own = httpx.post(worker.url + "/images", json={"count": 3})
        capped = httpx.post(worker.url + "/images", json={"count": 3, "pad": "x" * 200})
    assert (own.status_code, own.json()) == (413, {"detail": "too many images"})
    assert capped.status_code == 413 and capped.json()["limit"] == 100
