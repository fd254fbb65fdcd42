"""Compatibility with the reference server on real `flash build` apps.

Each fixture app under tests/apps/ has request cases (cases.json) and what the reference
(runpod_flash's create_lb_handler on FastAPI/uvicorn) answered to them (reference.json, written by
tests/apps/record_reference.py). Every case is sent over TCP to our runtime, one worker per app and
resource, and its answer is compared with the reference's:

- the status, always;
- 2xx: the media type of `Content-Type`; the JSON body, except the keys a case lists in `vary`
  (per-call values such as timestamps), which need only be present with a value of the same JSON
  type; a stream of JSON lines value by value (the spacing inside a line is not compared);
- 422: the error's `loc` and `type` when the reference reports one error; when it reports several,
  our single (first) error's `loc` must be one of the reference's;
- 404/405: the body (and for 405, an `Allow` header naming at least the reference's methods);
- 500: `"detail": "Internal Server Error"`, and nothing of the exception's message;
- other statuses (e.g. a redirect): the status only.

A case with `"deviation": "reason"` is a known, deliberate difference: its `expect` (status, and
`json`, `jsonl`, `text`, `content_type` or `errors`) is asserted instead of the reference's answer.

COMPAT_TARGET=reference runs the same suite against the reference server itself (a check of the
harness and of the recorded answers; deviation cases then compare with the recorded answer too).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Worker, run_check

APPS_DIR = Path(__file__).resolve().parent / "apps"
sys.path.insert(0, str(APPS_DIR))
import record_reference as reference  # noqa: E402

TARGET = os.environ.get("COMPAT_TARGET", "runtime")
assert TARGET in ("runtime", "reference"), (
    f"COMPAT_TARGET must be runtime or reference, not {TARGET!r}"
)
SECRET = "secret detail"  # the message of the fixture handlers' ValueError: never in a response


def _load(app: str) -> tuple[dict[str, Any], dict[str, Any]]:
    cases = reference.load_cases(app)
    recorded = json.loads((APPS_DIR / app / "reference.json").read_text())
    return cases, recorded


def _params() -> list:
    params = []
    for app in reference.ALL_APPS:
        cases, recorded = _load(app)
        for case in cases["cases"]:
            resource = reference.case_resource(cases, case)
            answer = recorded["answers"].get(case["name"])
            params.append(pytest.param(app, resource, case, answer, id=f"{app}-{case['name']}"))
    return params


class _Servers:
    """One server per (app, resource), started on first use, stopped at module teardown."""

    def __init__(self) -> None:
        self.started: dict[tuple[str, str | None], Any] = {}

    def url(self, app: str, resource: str | None) -> str:
        key = (app, resource)
        if key not in self.started:
            if TARGET == "reference":
                server = reference.ReferenceServer(app, resource or reference.default_resource(app))
                self.started[key] = server.wait_ready()
            else:
                # No resource named: the runtime picks the app's only load-balanced resource.
                env = {"FLASH_RESOURCE_NAME": resource} if resource else {}
                self.started[key] = Worker(APPS_DIR / app, env=env).wait_ready(timeout=90)
        return self.started[key].url

    def stop(self) -> None:
        for server in self.started.values():
            server.stop()


@pytest.fixture(scope="module")
def servers():
    servers = _Servers()
    yield servers
    servers.stop()


# --- comparison -------------------------------------------------------------------------------


def _describe(case: dict[str, Any], response: httpx.Response, expected: Any) -> str:
    request = {k: v for k, v in case.items() if k not in ("name", "deviation", "expect")}
    return (
        f"\nrequest:   {json.dumps(request, ensure_ascii=False)}"
        f"\nours:      {response.status_code} {response.headers.get('content-type')} {response.text[:600]}"
        f"\nexpected:  {json.dumps(expected, ensure_ascii=False)[:600]}"
    )


def _same_json(ours: Any, theirs: Any, vary: list[str]) -> bool:
    if not vary:
        return ours == theirs
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return False
    if set(ours) != set(theirs):
        return False
    for key, value in theirs.items():
        if key in vary:
            if type(ours[key]) is not type(value):
                return False
        elif ours[key] != value:
            return False
    return True


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), list) and body["detail"], body
    return body["detail"]


def _check_errors(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], why: str) -> None:
    """theirs: the reference's error list (or an `expect.errors` list, `type` optional)."""
    if len(theirs) == 1:
        assert len(ours) == 1, f"expected one error{why}"
        if "loc_prefix" in theirs[0]:  # a documented deviation whose loc tail is parser-specific
            prefix = theirs[0]["loc_prefix"]
            assert ours[0]["loc"][: len(prefix)] == prefix, f"error loc differs{why}"
        else:
            assert ours[0]["loc"] == theirs[0]["loc"], f"error loc differs{why}"
        if "type" in theirs[0]:
            assert ours[0]["type"] == theirs[0]["type"], f"error type differs{why}"
    else:
        assert len(ours) >= 1, why
        assert ours[0]["loc"] in [e["loc"] for e in theirs], (
            f"error loc not among the reference's{why}"
        )


def _check_500(response: httpx.Response, why: str) -> None:
    assert SECRET not in response.text, f"the exception message leaked{why}"
    if TARGET == "reference":
        assert response.text == "Internal Server Error", why
    else:
        assert response.json()["detail"] == "Internal Server Error", why


def _check_against_reference(
    case: dict[str, Any], answer: dict[str, Any], response: httpx.Response
) -> None:
    why = _describe(case, response, answer)
    status = answer["status"]
    assert response.status_code == status, f"status differs{why}"
    if 200 <= status < 300:
        if "content_type" in answer:
            _check_media_type(response, answer["content_type"], why)
        if "json" in answer:
            assert "json" in response.headers.get("content-type", ""), f"not JSON{why}"
            assert _same_json(response.json(), answer["json"], case.get("vary", [])), (
                f"body differs{why}"
            )
        elif "jsonl" in answer:
            assert reference.json_lines(response.text) == answer["jsonl"], f"JSON lines differ{why}"
        else:
            assert response.text == answer["text"], f"body differs{why}"
    elif status == 422:
        _check_errors(_errors(response), answer["json"]["detail"], why)
    elif status in (404, 405):
        if "json" in answer:
            assert response.json() == answer["json"], f"body differs{why}"
        else:
            assert response.text == answer["text"], f"body differs{why}"
        if status == 405:
            allowed = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
            needed = {m.strip() for m in answer.get("allow", "").split(",") if m.strip()}
            assert needed <= allowed, (
                f"Allow {sorted(allowed)} lacks {sorted(needed - allowed)}{why}"
            )
    elif status == 500:
        _check_500(response, why)


def _check_media_type(response: httpx.Response, content_type: str, why: str) -> None:
    ours = reference.media_type(response.headers.get("content-type"))
    assert ours == reference.media_type(content_type), f"content type differs{why}"


def _check_expect(case: dict[str, Any], response: httpx.Response) -> None:
    expect = case["expect"]
    why = _describe(case, response, expect) + f"\ndeviation: {case['deviation']}"
    assert response.status_code == expect["status"], (
        f"status differs from the documented behaviour{why}"
    )
    if "content_type" in expect:
        _check_media_type(response, expect["content_type"], why)
    if "json" in expect:
        assert _same_json(response.json(), expect["json"], case.get("vary", [])), (
            f"body differs{why}"
        )
    if "jsonl" in expect:
        assert reference.json_lines(response.text) == expect["jsonl"], f"JSON lines differ{why}"
    if "text" in expect:
        assert response.text == expect["text"], f"body differs{why}"
    if "errors" in expect:
        _check_errors(_errors(response), expect["errors"], why)
    if expect["status"] == 500:
        _check_500(response, why)


@pytest.mark.parametrize(("app", "resource", "case", "answer"), _params())
def test_case(servers, app, resource, case, answer):
    assert answer is not None, (
        f"no recorded answer for {app}/{case['name']}: run tests/apps/record_reference.py {app}"
    )
    response = reference.request(servers.url(app, resource), case)
    if "deviation" in case and TARGET == "runtime":
        _check_expect(case, response)
    else:
        _check_against_reference(case, answer, response)


# --- the fixtures themselves ------------------------------------------------------------------


@pytest.mark.parametrize("app", reference.ALL_APPS)
def test_recorded_answers_match_cases(app):
    """reference.json answers exactly the cases in cases.json (re-record after editing cases)."""
    cases, recorded = _load(app)
    assert list(recorded["answers"]) == [case["name"] for case in cases["cases"]]
    manifest = json.loads((APPS_DIR / app / "flash_manifest.json").read_text())
    routes = {
        f"{fn['http_method']} {fn['http_path']}"
        for res in manifest["resources"].values()
        for fn in res["functions"]
        if fn.get("http_method")
    }
    for left_out in recorded["unservable_routes"].values():
        for route in left_out:
            assert route in routes
            covered = [c for c in cases["cases"] if f"{c['method']} {c['path']}" == route]
            assert covered and all("deviation" in c for c in covered), (
                f"{route}: the reference cannot serve it, so its cases need a deviation and an expect"
            )


@pytest.mark.skipif(TARGET != "runtime", reason="startup errors are the runtime's")
def test_two_lb_resources_none_named_is_a_startup_error():
    result = run_check(APPS_DIR / "multi", env={"_ARGS": "--check"})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "alpha" in output and "beta" in output, output


@pytest.mark.skipif(TARGET != "runtime", reason="the artifact is served by the runtime")
def test_artifact_serves_like_the_sources(tmp_path):
    """kinds/artifact.tar.gz (a real `flash build --exclude runpod_flash` output) unpacked by the
    runtime into an empty module path answers like the app served from its sources."""
    artifact = APPS_DIR / "kinds" / "artifact.tar.gz"
    cases, recorded = _load("kinds")
    picked = {
        "scalars_ok",
        "scalars_lax_str_numbers",
        "scalars_missing_one",
        "model_ok",
        "get_item_bad",
        "unknown_route",
        "fail_async",
    }
    module_path = tmp_path / "app"
    module_path.mkdir()
    env = {"FLASH_ARTIFACT_PATH": str(artifact)}
    with Worker(module_path, env=env) as worker:
        worker.wait_ready(timeout=90)
        for case in cases["cases"]:
            if case["name"] in picked:
                _check_against_reference(
                    case, recorded["answers"][case["name"]], reference.request(worker.url, case)
                )
    assert (module_path / "kinds_api.py").is_file()
