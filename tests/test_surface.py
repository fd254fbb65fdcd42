"""Streams, raw and typed return values, file uploads and pydantic models, over TCP."""

from __future__ import annotations

import hashlib
import json
import os
import time

import httpx
import pytest
from support import CORE_APP, Worker, lb_manifest, write_app


@pytest.fixture(scope="module")
def worker():
    with Worker(CORE_APP, env={"FLASH_MAX_BODY_BYTES": str(8 * 1024 * 1024)}) as w:
        yield w.wait_ready()


GATED = """
import asyncio
import os


async def gated(gate: str):
    yield {"index": 0}
    while not os.path.exists(gate):  # the rest waits until the test has read the first item
        await asyncio.sleep(0.02)
    for index in (1, 2):
        yield {"index": index}
"""


@pytest.fixture(scope="module")
def gated_worker(tmp_path_factory):
    app = write_app(
        tmp_path_factory.mktemp("gated"),
        lb_manifest(("gated", "gated", "GET", "/gated")),
        {"gated.py": GATED},
    )
    with Worker(app) as w:
        yield w.wait_ready()


def _read_gated(worker: Worker, gate, headers: dict, parse) -> list:
    """Read the /gated stream; the generator is held after its first item until `gate` exists,
    so receiving that item proves it was sent before the generator finished."""
    items = []
    with httpx.stream(
        "GET", worker.url + "/gated", params={"gate": str(gate)}, headers=headers, timeout=30
    ) as response:
        content_type = response.headers["content-type"]
        for line in response.iter_lines():
            item = parse(line)
            if item is None:
                continue
            items.append(item)
            if len(items) == 1:
                assert not gate.exists()
                gate.touch()
    return content_type, items


def test_sse_arrives_incrementally(gated_worker, tmp_path):
    def parse(line):
        return json.loads(line[len("data: ") :]) if line.startswith("data: ") else None

    content_type, events = _read_gated(
        gated_worker, tmp_path / "gate", {"Accept": "text/event-stream"}, parse
    )
    assert content_type.startswith("text/event-stream")
    assert events == [{"index": i} for i in range(3)]


def test_json_lines_without_sse_accept_arrive_incrementally(gated_worker, tmp_path):
    content_type, items = _read_gated(
        gated_worker, tmp_path / "gate", {}, lambda line: json.loads(line) if line else None
    )
    assert content_type.startswith("application/jsonl")
    assert items == [{"index": i} for i in range(3)]


def test_sync_generator_streams_from_the_pool(worker):
    r = httpx.get(worker.url + "/stream-sync", params={"count": 3, "delay": 0.05}, timeout=10)
    items = [json.loads(line) for line in r.text.splitlines() if line]
    assert [i["index"] for i in items] == [0, 1, 2]
    assert all(i["thread"].startswith("handler") for i in items)


def test_client_disconnect_stops_the_generator(worker):
    count = 100_000  # 0.05 s apart: over an hour, unless the disconnect stops the generator
    with httpx.stream(
        "GET",
        worker.url + "/stream",
        params={"count": count, "delay": 0.05},
        headers={"Accept": "text/event-stream"},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # leave after the first event; the context manager closes the connection
    deadline = time.monotonic() + 30
    while not (state := httpx.get(worker.url + "/stream-state").json())["closed"]:
        assert time.monotonic() < deadline, (
            f"the generator still runs after the client left: {state}"
        )
        time.sleep(0.05)
    assert state["produced"] < count, state


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
    assert httpx.get(worker.url + "/numpy").json() == {
        "array": [[0, 1, 2], [3, 4, 5]],
        "scalar": 1.5,
        "int": 7,
    }


def test_pydantic_model_is_the_body_and_encodes_on_return(worker):
    r = httpx.post(worker.url + "/orders", json={"sku": "abc", "quantity": "2"})
    assert r.status_code == 200 and r.json() == {"sku": "abc", "total": 5.0}
    bad = httpx.post(worker.url + "/orders", json={"sku": "abc", "quantity": 0})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "quantity"]
    assert bad.json()["detail"][0]["type"] == "greater_than_equal"


def test_list_of_pydantic_models_is_a_key_of_the_body(worker):
    r = httpx.post(
        worker.url + "/orders/bulk", json={"orders": [{"sku": "a"}, {"sku": "b"}], "note": "n"}
    )
    assert r.json() == {"count": 2, "skus": ["a", "b"], "note": "n"}
    bad = httpx.post(worker.url + "/orders/bulk", json={"orders": [{"sku": "a"}, {"quantity": 2}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "orders", 1, "sku"]


def test_multipart_upload_of_a_few_megabytes_round_trips(worker):
    data = os.urandom(5 * 1024 * 1024)
    r = httpx.post(
        worker.url + "/upload",
        files={"data": ("blob.bin", data)},
        data={"name": "blob", "copies": "3"},
        timeout=30,
    )
    assert r.status_code == 200
    assert r.json() == {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "name": "blob",
        "copies": 3,
    }


def test_multipart_upload_form_fields_are_validated(worker):
    r = httpx.post(worker.url + "/upload", files={"data": ("a", b"x")}, data={"copies": "many"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "copies"]
    missing = httpx.post(worker.url + "/upload", data={"name": "x"}, files={"other": ("a", b"x")})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "data"]


def test_oversized_upload_is_413(worker):
    data = os.urandom(9 * 1024 * 1024)
    r = httpx.post(worker.url + "/upload", files={"data": ("big.bin", data)}, timeout=30)
    assert r.status_code == 413 and r.json()["limit"] == 8 * 1024 * 1024
