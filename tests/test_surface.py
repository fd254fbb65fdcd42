"""Streams, raw and typed return values, file uploads and pydantic models, over TCP."""

from __future__ import annotations

import hashlib
import json
import os
import time

import httpx
import pytest

from support import CORE_APP, Worker


@pytest.fixture(scope="module")
def worker():
    with Worker(CORE_APP, env={"FLASH_MAX_BODY_BYTES": str(8 * 1024 * 1024)}) as w:
        yield w.wait_ready()


def test_sse_arrives_incrementally(worker):
    with httpx.stream("GET", worker.url + "/stream", params={"count": 5, "delay": 0.3},
                      headers={"Accept": "text/event-stream"}, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        start = time.monotonic()
        events = []
        first_at = None
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
                first_at = first_at if first_at is not None else time.monotonic() - start
        total = time.monotonic() - start
    assert events == [{"index": i} for i in range(5)]
    # The first event came long before the generator finished (5 x 0.3 s).
    assert first_at is not None and first_at < total - 0.8


def test_json_lines_without_sse_accept(worker):
    with httpx.stream("GET", worker.url + "/stream", params={"count": 3, "delay": 0.3}, timeout=10) as response:
        assert response.headers["content-type"].startswith("application/jsonl")
        start = time.monotonic()
        lines = []
        for line in response.iter_lines():
            if line:
                lines.append((time.monotonic() - start, json.loads(line)))
    assert [item for _, item in lines] == [{"index": i} for i in range(3)]
    assert lines[0][0] < lines[-1][0] - 0.4


def test_sync_generator_streams_from_the_pool(worker):
    r = httpx.get(worker.url + "/stream-sync", params={"count": 3, "delay": 0.05}, timeout=10)
    items = [json.loads(line) for line in r.text.splitlines() if line]
    assert [i["index"] for i in items] == [0, 1, 2]
    assert all(i["thread"].startswith("handler") for i in items)


def test_client_disconnect_stops_the_generator(worker):
    with httpx.stream("GET", worker.url + "/stream", params={"count": 100, "delay": 0.1},
                      headers={"Accept": "text/event-stream"}, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first event; the context manager closes the connection
    time.sleep(1.0)
    state = httpx.get(worker.url + "/stream-state").json()
    assert state["closed"] is True
    assert state["produced"] < 30, state


def test_bytes_are_octet_stream(worker):
    r = httpx.get(worker.url + "/bytes")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"\x00\x01binary\xff"


def test_starlette_response_passes_through(worker):
    r = httpx.get(worker.url + "/custom")
    assert r.status_code == 418 and r.text == "teapot" and r.headers["x-custom"] == "yes"
    assert r.headers["x-request-id"]


def test_numpy_values_encode(worker):
    assert httpx.get(worker.url + "/numpy").json() == {"array": [[0, 1, 2], [3, 4, 5]], "scalar": 1.5, "int": 7}


def test_pydantic_model_is_the_body_and_encodes_on_return(worker):
    r = httpx.post(worker.url + "/orders", json={"sku": "abc", "quantity": "2"})
    assert r.status_code == 200 and r.json() == {"sku": "abc", "total": 5.0}
    bad = httpx.post(worker.url + "/orders", json={"sku": "abc", "quantity": 0})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "quantity"]
    assert bad.json()["detail"][0]["type"] == "greater_than_equal"


def test_list_of_pydantic_models_is_a_key_of_the_body(worker):
    r = httpx.post(worker.url + "/orders/bulk", json={"orders": [{"sku": "a"}, {"sku": "b"}], "note": "n"})
    assert r.json() == {"count": 2, "skus": ["a", "b"], "note": "n"}
    bad = httpx.post(worker.url + "/orders/bulk", json={"orders": [{"sku": "a"}, {"quantity": 2}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "orders", 1, "sku"]


def test_multipart_upload_of_a_few_megabytes_round_trips(worker):
    data = os.urandom(5 * 1024 * 1024)
    r = httpx.post(worker.url + "/upload", files={"data": ("blob.bin", data)},
                   data={"name": "blob", "copies": "3"}, timeout=30)
    assert r.status_code == 200
    assert r.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "name": "blob", "copies": 3}


def test_multipart_upload_form_fields_are_validated(worker):
    r = httpx.post(worker.url + "/upload", files={"data": ("a", b"x")}, data={"copies": "many"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "copies"]
    missing = httpx.post(worker.url + "/upload", data={"name": "x"}, files={"other": ("a", b"x")})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "data"]


def test_oversized_upload_is_413(worker):
    data = os.urandom(9 * 1024 * 1024)
    r = httpx.post(worker.url + "/upload", files={"data": ("big.bin", data)}, timeout=30)
    assert r.status_code == 413 and r.json()["limit"] == 8 * 1024 * 1024
