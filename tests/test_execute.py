"""`/execute` for local development: wire-compatible with runpod-flash's client, and gated."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from support import CORE_APP, Worker, run_check


def multiply(a, b, scale=1):
    """Shipped to the worker as source code, the way the runpod-flash client ships it."""
    import helper_module

    return helper_module.combine(a, b) * scale


class _Server:
    name = "local"
    endpoint_url = ""


def _stub():
    from runpod_flash.stubs.load_balancer_sls import LoadBalancerSlsStub

    return LoadBalancerSlsStub(_Server())


@pytest.fixture(scope="module")
def dev_worker():
    with Worker(CORE_APP, env={"FLASH_ENABLE_EXECUTE": "1"}) as worker:
        yield worker.wait_ready()


def test_round_trip_through_the_client_stubs_payload(dev_worker):
    stub = _stub()
    payload = asyncio.run(stub._prepare_request(multiply, None, None, False, 6, 7, scale=2))
    assert set(payload) >= {"function_name", "function_code", "args", "kwargs", "modules"}
    payload["modules"] = {"helper_module.py": "def combine(a, b):\n    return a * b\n"}
    response = httpx.post(dev_worker.url + "/execute", json=payload, timeout=30)
    assert response.status_code == 200
    assert stub._handle_response(response.json()) == 84


def test_async_function_and_failures_carry_no_exception_message(dev_worker):
    stub = _stub()
    code = "async def fails():\n    raise ValueError('private detail')\n"
    response = httpx.post(
        dev_worker.url + "/execute", json={"function_name": "fails", "function_code": code}
    )
    body = response.json()
    assert (
        body["success"] is False
        and "ValueError" in body["error"]
        and "private detail" not in body["error"]
    )
    with pytest.raises(Exception, match="Remote execution failed"):
        stub._handle_response(body)


def test_module_path_escaping_its_folder_is_refused(dev_worker, tmp_path):
    for path in ("../evil.py", "/tmp/evil.py", "a/../../evil.py"):
        payload = {
            "function_name": "f",
            "function_code": "def f():\n    return 1\n",
            "modules": {path: "x = 1\n"},
        }
        response = httpx.post(dev_worker.url + "/execute", json=payload)
        assert response.status_code == 400
        assert response.json()["success"] is False and "escapes" in response.json()["error"]


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_a_request_relayed_by_a_local_proxy_gets_403(dev_worker, header):
    """A sidecar proxy connects from 127.0.0.1 for remote clients and says so in these headers."""
    payload = {"function_name": "f", "function_code": "def f():\n    return 1\n"}
    value = "for=203.0.113.7" if header == "Forwarded" else "203.0.113.7"
    response = httpx.post(dev_worker.url + "/execute", json=payload, headers={header: value})
    assert response.status_code == 403
    assert httpx.post(dev_worker.url + "/execute", json=payload).json()["success"] is True


def test_execute_is_404_by_default():
    with Worker(CORE_APP) as worker:
        worker.wait_ready()
        assert httpx.post(worker.url + "/execute", json={}).status_code == 404


def test_is_live_resource_in_the_manifest_does_not_turn_it_on(tmp_path):
    from support import lb_manifest, write_app

    app = write_app(
        tmp_path / "app",
        lb_manifest(("m", "f", "GET", "/f"), is_live_resource=True),
        {"m.py": "async def f() -> dict:\n    return {}\n"},
    )
    with Worker(app) as worker:
        worker.wait_ready()
        assert httpx.post(worker.url + "/execute", json={}).status_code == 404


@pytest.mark.parametrize("variable", ["RUNPOD_ENDPOINT_ID", "RUNPOD_POD_ID"])
def test_enabling_it_on_a_deployed_worker_fails_the_boot(variable):
    result = run_check(
        CORE_APP, {"FLASH_ENABLE_EXECUTE": "1", variable: "abc123", "_ARGS": "--check"}
    )
    assert result.returncode == 2
    assert variable in result.stdout and "refused on a deployed worker" in result.stdout


def test_non_loopback_client_gets_403_at_the_asgi_level():
    """The app itself, called with a non-loopback client address in the scope."""
    from runtime.app import build_routed_app
    from runtime.execute import Executor
    from runtime.handlers import SyncPool
    from runtime.health import Health
    from runtime.metrics import Metrics
    from runtime.settings import Settings

    settings = Settings.from_env({"FLASH_MODULE_PATH": str(CORE_APP), "FLASH_ENABLE_EXECUTE": "1"})
    pool = SyncPool(1)
    app = build_routed_app([], settings, Health(), Metrics(), Executor(pool))

    async def call(client: tuple[str, int]) -> tuple[int, bytes]:
        body = b'{"function_name": "f", "function_code": "def f():\\n    return 1\\n"}'
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/execute",
            "raw_path": b"/execute",
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": client,
            "server": ("127.0.0.1", 8000),
            "scheme": "http",
            "http_version": "1.1",
            "root_path": "",
            "asgi": {"version": "3.0"},
        }
        sent: list[dict] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    try:
        for address in ("10.1.2.3", "192.168.0.5", "8.8.8.8", "::ffff:10.0.0.1", "fe80::1"):
            status, body = asyncio.run(call((address, 5555)))
            assert status == 403, (address, body)
        for address in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
            status, body = asyncio.run(call((address, 5555)))
            assert status == 200 and b'"success":true' in body, (address, body)
    finally:
        pool.shutdown()
