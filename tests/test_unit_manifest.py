"""The manifest in process: a good one read, each kind of bad one refused with its message, the
resource chosen, and the routes checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.errors import StartupError
from runtime.manifest import check_module_name, load_manifest, resource_routes, select_resource

CORE_MANIFEST = Path(__file__).resolve().parent / "core_app" / "flash_manifest.json"


def _write(tmp_path: Path, manifest: dict | str) -> Path:
    path = tmp_path / "flash_manifest.json"
    path.write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return path


def _fn(
    name: str = "f", module: str = "m", method: str | None = "POST", path: str | None = "/f"
) -> dict:
    return {"name": name, "module": module, "http_method": method, "http_path": path}


def _manifest(*functions: dict, **resources: dict) -> dict:
    return {
        "resources": {"api": {"is_load_balanced": True, "functions": list(functions)}, **resources}
    }


def test_a_flash_build_manifest_is_read_with_unknown_fields_ignored():
    manifest = load_manifest(CORE_MANIFEST)
    assert list(manifest.resources) == ["core", "queue"]
    core = manifest.resources["core"]
    assert (
        core.is_load_balanced and core.resource_type == "CpuLiveLoadBalancer"
    )  # some_future_field ignored
    assert (core.functions[0].name, core.functions[0].module, core.functions[0].http_path) == (
        "scalars",
        "handlers",
        "/scalars",
    )


def test_only_the_route_fields_are_required(tmp_path):
    manifest = load_manifest(
        _write(tmp_path, {"resources": {"api": {"functions": [{"name": "f", "module": "m"}]}}})
    )
    api = manifest.resources["api"]
    assert (api.is_load_balanced, api.functions[0].http_method, manifest.version) == (
        False,
        None,
        None,
    )


@pytest.mark.parametrize(
    "text, problem",
    [
        (
            "{not json",
            "manifest is not valid JSON: {path}: JSON is malformed: object keys must be strings (byte 1)",
        ),
        ("", "manifest is not valid JSON: {path}: Input data was truncated"),
        ("{}", "manifest invalid: {path}: Object missing required field `resources`"),
        ("[]", "manifest invalid: {path}: Expected `object`, got `array`"),
        (
            '{"resources": []}',
            "manifest invalid: {path}: Expected `object`, got `array` - at `$.resources`",
        ),
        (
            '{"resources": {"api": []}}',
            "manifest invalid: {path}: Expected `object`, got `array` - at `$.resources.api`",
        ),
        (
            '{"resources": {"api": {"functions": [{"module": "m"}]}}}',
            "manifest invalid: {path}: Object missing required field `name` - at `$.resources.api.functions[0]`",
        ),
        (
            '{"resources": {"api": {"functions": [{"name": "f", "module": "m", "http_method": 5}]}}}',
            "manifest invalid: {path}: Expected `str | null`, got `int` - at `$.resources.api.functions[0].http_method`",
        ),
        (
            '{"resources": {"ok": {}, "api": {"is_load_balanced": "yes"}}}',
            "manifest invalid: {path}: Expected `bool`, got `str` - at `$.resources.api.is_load_balanced`",
        ),
    ],
)
def test_a_bad_manifest_is_a_startup_error_naming_the_file_and_the_place(tmp_path, text, problem):
    path = _write(tmp_path, text)
    with pytest.raises(StartupError) as caught:
        load_manifest(path)
    assert str(caught.value) == problem.format(path=path)


def test_a_missing_or_unreadable_manifest(tmp_path):
    with pytest.raises(StartupError) as missing:
        load_manifest(tmp_path / "nope.json")
    assert (
        str(missing.value)
        == f"manifest not found: {tmp_path / 'nope.json'} (set FLASH_MANIFEST_PATH or FLASH_MODULE_PATH)"
    )
    with pytest.raises(StartupError) as folder:
        load_manifest(tmp_path)
    assert str(folder.value) == f"manifest unreadable: {tmp_path}: Is a directory"


# --- choosing the resource ------------------------------------------------------------------------


def _load(tmp_path: Path, manifest: dict):
    path = _write(tmp_path, manifest)
    return load_manifest(path), path


def test_the_only_load_balanced_resource_is_chosen(tmp_path):
    manifest, path = _load(tmp_path, _manifest(_fn(), queue={"functions": [_fn("g")]}))
    assert select_resource(manifest, path, None)[0] == "api"


@pytest.mark.parametrize(
    "name, chosen",
    [("queue", "queue"), ("live-api", "api"), ("api-fb", "api"), ("live-api-fb", "api")],
)
def test_a_named_resource_is_matched_as_runpod_flash_matches_it(tmp_path, name, chosen):
    manifest, path = _load(tmp_path, _manifest(_fn(), queue={"functions": [_fn("g")]}))
    assert select_resource(manifest, path, name)[0] == chosen


def test_an_exact_name_wins_over_a_stripped_one(tmp_path):
    manifest, path = _load(tmp_path, _manifest(_fn(), **{"live-api": {"functions": [_fn("g")]}}))
    assert select_resource(manifest, path, "live-api")[0] == "live-api"


def test_resource_choice_errors(tmp_path):
    manifest, path = _load(tmp_path, _manifest(_fn(), queue={"functions": [_fn("g")]}))
    with pytest.raises(StartupError) as unknown:
        select_resource(manifest, path, "other")
    assert (
        str(unknown.value)
        == f"FLASH_RESOURCE_NAME='other' is not a resource of {path} (resources: api, queue)"
    )
    none, path = _load(tmp_path, {"resources": {"b": {}, "a": {}}})
    with pytest.raises(StartupError) as no_lb:
        select_resource(none, path, None)
    assert str(no_lb.value) == (
        f"{path} has no resource with is_load_balanced: true; set FLASH_RESOURCE_NAME "
        "(resources: a, b)"
    )
    several, path = _load(tmp_path, _manifest(_fn(), other={"is_load_balanced": True}))
    with pytest.raises(StartupError) as two:
        select_resource(several, path, None)
    assert (
        str(two.value)
        == f"{path} has several load-balanced resources (api, other); set FLASH_RESOURCE_NAME to one of them"
    )


def test_a_dotted_module_path_must_be_a_module_of_the_resource(tmp_path):
    manifest, path = _load(
        tmp_path, _manifest(_fn(module="pkg.api"), _fn("g", module="pkg.other", path="/g"))
    )
    resource = manifest.resources["api"]
    check_module_name("pkg.other", "api", resource, path)  # no error
    with pytest.raises(StartupError) as caught:
        check_module_name("lb_worker", "api", resource, path)
    assert str(caught.value) == (
        f"FLASH_MODULE_PATH='lb_worker' is not a module of resource 'api' in {path} "
        "(its modules: pkg.api, pkg.other)"
    )


# --- the routes -----------------------------------------------------------------------------------


def _routes(tmp_path: Path, *functions: dict):
    manifest, path = _load(tmp_path, _manifest(*functions))
    return resource_routes("api", manifest.resources["api"], path), path


def test_routes_are_read_with_the_method_upper_cased_and_their_path_params(tmp_path):
    routes, _ = _routes(
        tmp_path,
        _fn("get_item", "items", "get", "/items/{item_id}/parts/{part:int}"),
        _fn("make", "items", "POST", "/items"),
    )
    assert [(r.method, r.path, r.module, r.function, r.entry) for r in routes] == [
        (
            "GET",
            "/items/{item_id}/parts/{part:int}",
            "items",
            "get_item",
            "resources.api.functions[0] (get_item)",
        ),
        ("POST", "/items", "items", "make", "resources.api.functions[1] (make)"),
    ]
    assert routes[0].path_params == ("item_id", "part") and routes[1].path_params == ()


def test_the_same_template_with_another_method_is_another_route(tmp_path):
    routes, _ = _routes(
        tmp_path, _fn("a", method="GET", path="/x/{a}"), _fn("b", method="PUT", path="/x/{b}")
    )
    assert [r.method for r in routes] == ["GET", "PUT"]


@pytest.mark.parametrize(
    "functions, problem",
    [
        (
            [_fn(method=None)],
            "resources.api.functions[0] (f) has no http_method/http_path, so it cannot be served over HTTP",
        ),
        (
            [_fn(path=None)],
            "resources.api.functions[0] (f) has no http_method/http_path, so it cannot be served over HTTP",
        ),
        (
            [_fn(method="FETCH")],
            "resources.api.functions[0] (f) has http_method 'FETCH'; expected one of GET, POST, PUT, PATCH, DELETE",
        ),
        (
            [_fn(path="items")],
            "resources.api.functions[0] (f) has http_path 'items'; it must start with '/'",
        ),
        ([_fn(path="/ping")], "resources.api.functions[0] (f) uses the reserved route /ping"),
        (
            [_fn(path="/execute/")],
            "resources.api.functions[0] (f) uses the reserved route /execute/",
        ),
        (
            [_fn("a", path="/x/{a}"), _fn("b", path="/x/{b}")],
            "resources.api.functions[1] (b) duplicates the route POST /x/{b} of resources.api.functions[0] (a)",
        ),
        (
            [_fn("a", method="post"), _fn("b", method="POST")],
            "resources.api.functions[1] (b) duplicates the route POST /f of resources.api.functions[0] (a)",
        ),
    ],
)
def test_a_route_that_cannot_be_served_is_a_startup_error(tmp_path, functions, problem):
    with pytest.raises(StartupError) as caught:
        _routes(tmp_path, *functions)
    assert str(caught.value) == f"{tmp_path / 'flash_manifest.json'}: {problem}"


def test_a_resource_without_functions_is_a_startup_error(tmp_path):
    with pytest.raises(StartupError) as caught:
        _routes(tmp_path)
    assert (
        str(caught.value)
        == f"{tmp_path / 'flash_manifest.json'}: resource 'api' has no functions to serve"
    )
