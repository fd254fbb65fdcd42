"""OpenAPI 3.1 generated from the handlers: valid, complete, fuzzed; /docs; FLASH_OPENAPI=0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from support import CORE_APP, EXAMPLE_APP, Worker


@pytest.fixture(scope="module")
def example():
    with Worker(EXAMPLE_APP) as worker:
        yield worker.wait_ready()


def test_example_app_schema_is_valid_openapi_31(example):
    spec = httpx.get(example.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    assert set(spec["paths"]) == {"/health", "/echo", "/sum", "/items/{item_id}"}
    echo = spec["paths"]["/echo"]["post"]
    body = spec["components"]["schemas"]["echo_body"]
    assert echo["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/echo_body"
    )
    assert body["required"] == ["message"]
    assert body["properties"]["repeat"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 1,
    }
    assert echo["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/HTTPValidationError"
    )
    item = spec["paths"]["/items/{item_id}"]["get"]
    assert {(p["name"], p["in"], p["required"]) for p in item["parameters"]} == {
        ("item_id", "path", True),
        ("verbose", "query", False),
    }


def test_core_app_schema_covers_every_binding_kind():
    with Worker(CORE_APP) as worker:
        worker.wait_ready()
        spec = httpx.get(worker.url + "/openapi.json").json()
    validate(spec)
    schemas = spec["components"]["schemas"]
    assert schemas["options_body"]["properties"]["mode"] == {"enum": ["fast", "slow"]}
    assert schemas["structured_body"]["properties"]["box"] == {"$ref": "#/components/schemas/Box"}
    assert "Point" in schemas and "Person" in schemas and "Order" in schemas
    upload = spec["paths"]["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"][
        "schema"
    ]
    assert schemas[upload["$ref"].rsplit("/", 1)[1]]["properties"]["data"]["contentMediaType"]
    order = spec["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert order == {"$ref": "#/components/schemas/Order"}
    search = {p["name"]: p for p in spec["paths"]["/search"]["get"]["parameters"]}
    assert search["tags"]["schema"]["type"] == "array" and search["q"]["required"] is True


def test_fuzzing_the_example_app_finds_no_server_error(example, tmp_path):
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            example.url + "/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "generated" in result.stdout
    served = [line for line in example.logs() if line.get("event") == "request"]
    assert len(served) > 50 and not [line for line in served if line["status"] >= 500]


def test_docs_page_is_served_and_self_contained(example):
    r = httpx.get(example.url + "/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    import re

    external = re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", r.text, flags=re.I)
    assert external == []
    assert "import(" not in r.text and "@import" not in r.text


def test_openapi_off():
    with Worker(CORE_APP, env={"FLASH_OPENAPI": "0"}) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/openapi.json").status_code == 404
        assert httpx.get(worker.url + "/docs").status_code == 404


def test_containers_of_pydantic_models_are_described():
    with Worker(CORE_APP) as worker:
        worker.wait_ready()
        spec = httpx.get(worker.url + "/openapi.json").json()
    orders = spec["components"]["schemas"]["bulk_body"]["properties"]["orders"]
    assert orders == {"type": "array", "items": {"$ref": "#/components/schemas/Order"}}


def test_markers_app_documents_headers_cookies_aliases_and_constraints():
    markers = Path(__file__).resolve().parent / "apps" / "markers"
    with Worker(markers) as worker:
        worker.wait_ready(timeout=90)
        spec = httpx.get(worker.url + "/openapi.json").json()
    validate(spec)

    def params(path, method="get"):
        return {(p["name"], p["in"]): p for p in spec["paths"][path][method]["parameters"]}

    header = params("/header")
    assert header[("x-token", "header")]["required"] is True
    assert header[("x-count", "header")]["required"] is False
    assert ("key", "cookie") not in header
    assert {"session", "visits"} == {name for name, where in params("/cookie") if where == "cookie"}
    assert ("X-Api-Key", "header") in params("/header-alias")
    query = params("/query")
    assert query[("n", "query")]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert query[("word", "query")]["schema"]["pattern"] == "^[a-z]+$"
    assert ("item-id", "query") in params("/query-alias")
    assert {("limit", "query"), ("q", "query"), ("tags", "query")} <= set(params("/filters"))
    assert {("skip", "query"), ("limit", "query"), ("q", "query")} == set(params("/depends"))
    assert params("/path/{item_id}")[("item_id", "path")]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "exclusiveMaximum": 1000,
    }
    upload = spec["paths"]["/upload-file"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
