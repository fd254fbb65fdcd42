"""Record what the reference server answers for each fixture app's request cases.

The reference is runpod_flash's `create_lb_handler` (FastAPI) built the way the generated
`handler_<resource>.py` of a `flash build` builds it: every function of the resource that has an
`http_method` and `http_path` is imported from the app directory (`importlib.import_module(module)`
with the app directory first on `sys.path`) into a `(METHOD, path) -> function` registry, plus the
handler's own `GET /ping`. It is served by uvicorn on 127.0.0.1 in a subprocess, and the cases are
sent over TCP with httpx, the same way `tests/test_compat.py` sends them to our runtime.

    .venv/bin/python tests/apps/record_reference.py                 # record every app
    .venv/bin/python tests/apps/record_reference.py kinds           # one app
    .venv/bin/python tests/apps/record_reference.py serve kinds --port 8123 [--resource kinds]

`include_execute` is False, as for a deployed `LoadBalancerSlsResource` (the generated handler passes
the manifest's `is_live_resource`; our runtime never derives `/execute` from it).

A route whose signature `create_lb_handler` cannot turn into a FastAPI route (it raises at app
creation, e.g. a `msgspec.Struct` parameter: pydantic has no schema for it) would keep the whole
reference app from starting. Such routes are left out of the reference app and listed under
`unservable_routes` in reference.json; their cases must carry a `deviation` with an `expect`.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

APPS = Path(__file__).resolve().parent
ROOT = APPS.parent.parent
ALL_APPS = ("demo", "kinds", "multi", "markers", "coercion", "responses")


# --- cases ------------------------------------------------------------------------------------

def load_cases(app: str) -> dict[str, Any]:
    """cases.json: {"resource": default resource or null, "cases": [case, ...]}."""
    data = json.loads((APPS / app / "cases.json").read_text())
    names = [case["name"] for case in data["cases"]]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise ValueError(f"{app}/cases.json: duplicate case names {sorted(duplicates)}")
    for case in data["cases"]:
        if "deviation" in case and "expect" not in case:
            raise ValueError(f"{app}/cases.json: case {case['name']!r} has a deviation but no expect")
    return data


def case_resource(data: dict[str, Any], case: dict[str, Any]) -> str | None:
    return case.get("resource", data.get("resource"))


def send_case(client: httpx.Client, base_url: str, case: dict[str, Any]) -> httpx.Response:
    """Send one case: method, path, query (dict or [[k, v], ...]), headers, and at most one of
    json (any JSON value, sent as application/json), body (raw text, headers as given),
    body_base64 (raw bytes, e.g. invalid UTF-8, headers as given) or multipart ({"files": {field: [filename, text, content_type]}, "data": {field: text}})."""
    headers = dict(case.get("headers", {}))
    kwargs: dict[str, Any] = {}
    if "json" in case:
        kwargs["content"] = json.dumps(case["json"]).encode()
        headers.setdefault("content-type", "application/json")
    elif "body" in case:
        kwargs["content"] = case["body"].encode()
    elif "body_base64" in case:
        kwargs["content"] = base64.b64decode(case["body_base64"])
    elif "multipart" in case:
        parts = case["multipart"]
        kwargs["files"] = {field: (spec[0], spec[1].encode("latin-1"), spec[2])
                           for field, spec in parts.get("files", {}).items()}
        kwargs["data"] = parts.get("data", {})
    query = case.get("query")
    if query is not None:
        kwargs["params"] = [tuple(pair) for pair in query] if isinstance(query, list) else query
    return client.request(case["method"], base_url + case["path"], headers=headers, **kwargs)


def request(base_url: str, case: dict[str, Any]) -> httpx.Response:
    """Send a case on a connection of its own: the reference's uvicorn resets a kept-alive
    connection after a handler raised, which would fail the next case on it."""
    with httpx.Client(timeout=30.0) as client:
        return send_case(client, base_url, case)


def summarize(response: httpx.Response) -> dict[str, Any]:
    """What reference.json keeps of a response: status, JSON body (or text), content type, Allow."""
    out: dict[str, Any] = {"status": response.status_code}
    content_type = response.headers.get("content-type")
    if content_type is not None:
        out["content_type"] = content_type
    if "allow" in response.headers:
        out["allow"] = response.headers["allow"]
    if content_type and is_json_lines(content_type):
        out["jsonl"] = json_lines(response.text)
    elif content_type and "json" in content_type and response.content:
        out["json"] = response.json()
    else:
        out["text"] = response.text[:500]
    return out


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def is_json_lines(content_type: str | None) -> bool:
    """A stream of JSON values, one a line (the reference's generator answers)."""
    return media_type(content_type) in ("application/jsonl", "application/x-ndjson")


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- the reference app ------------------------------------------------------------------------

def resource_functions(manifest: dict[str, Any], resource: str) -> list[dict[str, Any]]:
    return [fn for fn in manifest["resources"][resource]["functions"]
            if fn.get("http_method") and fn.get("http_path")]


def build_reference_app(app_dir: Path, resource: str):
    """The FastAPI app the flash-lb worker runs for `resource`, and the routes left out of it."""
    from runpod_flash.runtime.lb_handler import create_lb_handler

    sys.path.insert(0, str(app_dir))
    manifest = json.loads((app_dir / "flash_manifest.json").read_text())
    registry = {}
    for fn in resource_functions(manifest, resource):
        module = importlib.import_module(fn["module"])
        registry[(fn["http_method"], fn["http_path"])] = getattr(module, fn["name"])

    unservable: dict[str, str] = {}
    for key, handler in list(registry.items()):
        try:
            create_lb_handler({key: handler}, include_execute=False)
        except Exception as exc:  # the whole reference app would fail to start
            unservable[f"{key[0]} {key[1]}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            del registry[key]
    app = create_lb_handler(registry, include_execute=False)

    @app.get("/ping")
    def ping():
        return {"status": "healthy"}

    return app, unservable


def serve(app: str, resource: str, port: int) -> None:
    import uvicorn

    app_obj, unservable = build_reference_app(APPS / app, resource)
    for route, error in unservable.items():
        print(f"reference: left out {route}: {error}", file=sys.stderr, flush=True)
    uvicorn.run(app_obj, host="127.0.0.1", port=port, log_level="warning")


def default_resource(app: str) -> str:
    """The only load-balanced resource of the app (like FLASH_RESOURCE_NAME unset)."""
    manifest = json.loads((APPS / app / "flash_manifest.json").read_text())
    lb = [name for name, res in manifest["resources"].items() if res.get("is_load_balanced")]
    if len(lb) != 1:
        raise ValueError(f"{app}: {len(lb)} load-balanced resources {lb}; cases need a resource")
    return lb[0]


def unservable_routes(app: str, resource: str) -> dict[str, str]:
    """Build the reference app in a subprocess (runpod_flash imports are heavy and global) and
    return the routes it had to leave out."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import record_reference as r; "
            "print(json.dumps(r.build_reference_app(r.APPS / sys.argv[2], sys.argv[3])[1]))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(APPS), app, resource],
                         capture_output=True, text=True, check=True, env=reference_env(resource))
    return json.loads(out.stdout.strip().splitlines()[-1])


def reference_env(resource: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASH_", "RUNPOD_"))}
    env["FLASH_RESOURCE_NAME"] = resource
    env["PYTHONWARNINGS"] = "ignore"
    return env


class ReferenceServer:
    """The reference app for one (app, resource) under uvicorn on a free loopback port."""

    def __init__(self, app: str, resource: str):
        sys.path.insert(0, str(ROOT / "tests"))
        from support import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: nobody reads the server's output while it runs, and once a pipe's
        # buffer is full (a few tracebacks of failing handlers) the server blocks writing its log.
        self.output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", app, "--resource", resource,
             "--port", str(self.port)],
            env=reference_env(resource), stdout=self.output, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> "ReferenceServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.output.seek(0)
                output = self.output.read().decode(errors="replace")
                raise RuntimeError(f"reference exited {self.proc.returncode}:\n{output}")
            try:
                if httpx.get(self.url + "/ping", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("reference server never answered /ping")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.output.close()


# --- recording --------------------------------------------------------------------------------

def record(app: str) -> None:
    data = load_cases(app)
    cases = data["cases"]
    by_resource: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        resource = case_resource(data, case) or default_resource(app)
        by_resource.setdefault(resource, []).append(case)

    answers: dict[str, Any] = {}
    unservable: dict[str, dict[str, str]] = {}
    for resource, resource_cases in by_resource.items():
        left_out = unservable_routes(app, resource)
        if left_out:
            unservable[resource] = left_out
        server = ReferenceServer(app, resource).wait_ready()
        try:
            for case in resource_cases:
                answers[case["name"]] = summarize(request(server.url, case))
        finally:
            server.stop()

    out = {
        "generated_by": "tests/apps/record_reference.py",
        "reference": reference_versions(),
        "unservable_routes": unservable,
        "answers": {case["name"]: answers[case["name"]] for case in cases},
    }
    (APPS / app / "reference.json").write_text(json.dumps(out, indent=2, sort_keys=False) + "\n")
    print(f"{app}: recorded {len(cases)} cases")


def reference_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("runpod-flash", "fastapi", "starlette", "pydantic", "uvicorn")}


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "serve":
        parser = argparse.ArgumentParser(prog="record_reference.py serve")
        parser.add_argument("app")
        parser.add_argument("--resource")
        parser.add_argument("--port", type=int, default=8000)
        args = parser.parse_args(argv[1:])
        serve(args.app, args.resource or default_resource(args.app), args.port)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("apps", nargs="*", default=list(ALL_APPS))
    args = parser.parse_args(argv)
    for app in args.apps:
        record(app)


if __name__ == "__main__":
    main()
