"""Boot: /ping states while loading, startup errors, artifacts, --check, dependency isolation."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest
from support import CORE_APP, Worker, lb_manifest, run_check, write_app

HELLO = "async def hello(name: str = 'world') -> dict:\n    return {'hello': name}\n"


def startup_error(result) -> dict:
    """The single `startup error` log line of a failed boot."""
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("event") == "startup error"]
    assert len(errors) == 1, result.stdout + result.stderr
    return errors[0]


def test_ping_is_204_while_the_startup_hook_runs_then_200(tmp_path):
    app = write_app(
        tmp_path / "app",
        lb_manifest(("hello", "hello", "GET", "/hello")),
        {
            "hello.py": HELLO + "import time\ndef warm():\n    time.sleep(1.5)\n",
        },
    )
    with Worker(app, env={"FLASH_STARTUP_HOOK": "hello:warm"}) as worker:
        first = worker.wait_status(204, timeout=15)
        assert first.content == b""
        # Routes are not served before the worker is ready.
        early = httpx.get(worker.url + "/hello", timeout=5)
        assert early.status_code == 503 and early.headers["retry-after"]
        ready = worker.wait_status(200, timeout=15)
        assert ready.json() == {"status": "healthy"}
        assert httpx.get(worker.url + "/hello", timeout=5).json() == {"hello": "world"}
        boot = worker.wait_log(lambda line: line["event"] == "boot")
        assert boot["phases_ms"]["startup_hook"] >= 1400
        assert set(boot["phases_ms"]) >= {"manifest", "import", "routes", "startup_hook"}
        assert boot["settings"]["port"] == worker.port


def test_async_startup_hook_runs_before_ready(tmp_path):
    app = write_app(
        tmp_path / "app",
        lb_manifest(("state", "loaded", "GET", "/loaded")),
        {
            "state.py": "MODEL = None\nasync def load():\n    global MODEL\n    MODEL = 'weights'\n"
            "async def loaded() -> dict:\n    return {'model': MODEL}\n",
        },
    )
    with Worker(app, env={"FLASH_STARTUP_HOOK": "state:load"}) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/loaded").json() == {"model": "weights"}


def test_failing_startup_hook_is_a_startup_error(tmp_path):
    app = write_app(
        tmp_path / "app",
        lb_manifest(("hello", "hello", "GET", "/hello")),
        {
            "hello.py": HELLO + "def warm():\n    raise RuntimeError('no weights')\n",
        },
    )
    with Worker(app, env={"FLASH_STARTUP_HOOK": "hello:warm"}) as worker:
        assert worker.wait_exit(30) == 1
        error = next(line for line in worker.logs() if line["event"] == "startup error")
        assert "no weights" in error["error"] and "Traceback" in error["exception"]


def test_module_path_defaults_manifest_path_and_explicit_manifest_path(tmp_path):
    app = write_app(tmp_path / "app", None, {"hello.py": HELLO})
    manifest = tmp_path / "elsewhere.json"
    manifest.write_text(json.dumps(lb_manifest(("hello", "hello", "GET", "/hello"))))
    with Worker(app, env={"FLASH_MANIFEST_PATH": str(manifest)}) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/hello", params={"name": "x"}).json() == {"hello": "x"}


def test_resource_name_selects_among_several(tmp_path):
    manifest = lb_manifest(("hello", "hello", "GET", "/a"), name="a")
    manifest["resources"].update(
        lb_manifest(("hello", "hello", "GET", "/b"), name="b")["resources"]
    )
    app = write_app(tmp_path / "app", manifest, {"hello.py": HELLO})
    with Worker(app, env={"FLASH_RESOURCE_NAME": "b"}) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/b").status_code == 200
        assert httpx.get(worker.url + "/a").status_code == 404


def test_artifact_is_unpacked_into_the_module_path(tmp_path):
    source = write_app(
        tmp_path / "src",
        lb_manifest(("pkg.hello", "hello", "GET", "/hello")),
        {
            "pkg/__init__.py": "",
            "pkg/hello.py": HELLO,
        },
    )
    archive = tmp_path / "artifact.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=".")
    target = tmp_path / "unpacked"
    with Worker(target, env={"FLASH_ARTIFACT_PATH": str(archive)}) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/hello").json() == {"hello": "world"}
        boot = worker.wait_log(lambda line: line["event"] == "boot")
        assert "unpack" in boot["phases_ms"]
    assert (target / "pkg" / "hello.py").is_file()


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        ok = tarfile.TarInfo("flash_manifest.json")
        manifest = json.dumps(lb_manifest(("hello", "hello", "GET", "/hello"))).encode()
        ok.size = len(manifest)
        tar.addfile(ok, io.BytesIO(manifest))
        tar.addfile(member, io.BytesIO(data) if data else None)
    return archive


@pytest.mark.parametrize(
    "make_member, message",
    [
        (lambda: _file("../escape.py"), "'..'"),
        (lambda: _file("/tmp/absolute.py"), "absolute"),
        (lambda: _link("link", "/etc/passwd", tarfile.SYMTYPE), "symlink"),
        (lambda: _link("link", "../../outside", tarfile.SYMTYPE), "symlink"),
        (lambda: _link("hard", "../outside", tarfile.LNKTYPE), "hard link"),
    ],
)
def test_artifact_member_escaping_the_tree_is_refused(tmp_path, make_member, message):
    member, data = make_member()
    archive = _tar_with(tmp_path, member, data)
    target = tmp_path / "unpacked"
    result = run_check(target, {"FLASH_ARTIFACT_PATH": str(archive), "_ARGS": "--check"})
    assert result.returncode == 1
    error = startup_error(result)
    assert str(archive) in error["error"] and message in error["error"]
    assert not (tmp_path / "escape.py").exists() and not Path("/tmp/absolute.py").exists()
    assert not (target / "flash_manifest.json").exists()  # nothing was written


def _file(name: str):
    info = tarfile.TarInfo(name)
    info.size = 3
    return info, b"x=1"


def _link(name: str, target: str, kind: bytes):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


# --- startup errors: one log line naming the file and entry, non-zero exit -------------------


def _fails(app: Path, env: dict | None = None) -> dict:
    result = run_check(app, {**(env or {}), "_ARGS": "--check"})
    assert result.returncode != 0, result.stdout
    return startup_error(result)


def test_no_manifest(tmp_path):
    app = write_app(tmp_path / "app", None, {"hello.py": HELLO})
    error = _fails(app)
    assert (
        "manifest not found" in error["error"]
        and str(app / "flash_manifest.json") in error["error"]
    )


def test_manifest_not_json(tmp_path):
    app = write_app(tmp_path / "app", '{"resources": {', {"hello.py": HELLO})
    error = _fails(app)
    assert "not valid JSON" in error["error"] and "flash_manifest.json" in error["error"]


def test_manifest_wrong_shape_names_the_entry(tmp_path):
    app = write_app(
        tmp_path / "app", {"resources": {"api": {"functions": [{"module": "hello"}]}}}, {}
    )
    error = _fails(app)
    assert (
        "flash_manifest.json" in error["error"] and "$.resources.api.functions[0]" in error["error"]
    )


def test_unknown_resource(tmp_path):
    app = write_app(
        tmp_path / "app", lb_manifest(("hello", "hello", "GET", "/hello")), {"hello.py": HELLO}
    )
    error = _fails(app, {"FLASH_RESOURCE_NAME": "nope"})
    assert "'nope'" in error["error"] and "api" in error["error"]


def test_two_load_balanced_resources_and_none_named(tmp_path):
    manifest = lb_manifest(("hello", "hello", "GET", "/a"), name="first")
    manifest["resources"].update(
        lb_manifest(("hello", "hello", "GET", "/b"), name="second")["resources"]
    )
    app = write_app(tmp_path / "app", manifest, {"hello.py": HELLO})
    error = _fails(app)
    assert (
        "first" in error["error"]
        and "second" in error["error"]
        and "FLASH_RESOURCE_NAME" in error["error"]
    )


def test_no_load_balanced_resource(tmp_path):
    manifest = {
        "resources": {
            "queue": {
                "is_load_balanced": False,
                "functions": [{"name": "hello", "module": "hello"}],
            }
        }
    }
    app = write_app(tmp_path / "app", manifest, {"hello.py": HELLO})
    assert "no resource with is_load_balanced" in _fails(app)["error"]


def test_missing_module(tmp_path):
    app = write_app(tmp_path / "app", lb_manifest(("missing_mod", "hello", "GET", "/hello")), {})
    error = _fails(app)
    assert (
        "resources.api.functions[0]" in error["error"]
        and "'missing_mod' not found" in error["error"]
    )


def test_module_that_fails_to_import_keeps_its_traceback(tmp_path):
    app = write_app(
        tmp_path / "app",
        lb_manifest(("broken", "hello", "GET", "/hello")),
        {
            "broken.py": "import json\nraise RuntimeError('bad module')\n",
        },
    )
    error = _fails(app)
    assert "bad module" in error["error"] and 'broken.py", line 2' in error["exception"]


def test_missing_function(tmp_path):
    app = write_app(
        tmp_path / "app", lb_manifest(("hello", "nope", "GET", "/hello")), {"hello.py": HELLO}
    )
    error = _fails(app)
    assert "has no function 'nope'" in error["error"] and "functions[0]" in error["error"]


@pytest.mark.parametrize("path", ["/ping", "/execute"])
def test_reserved_route(tmp_path, path):
    app = write_app(
        tmp_path / "app", lb_manifest(("hello", "hello", "GET", path)), {"hello.py": HELLO}
    )
    error = _fails(app)
    assert f"reserved route {path}" in error["error"]


def test_duplicate_route(tmp_path):
    app = write_app(
        tmp_path / "app",
        lb_manifest(("hello", "hello", "GET", "/hello"), ("hello", "hello", "GET", "/hello")),
        {"hello.py": HELLO},
    )
    assert "duplicates the route GET /hello" in _fails(app)["error"]


def test_path_parameter_missing_from_the_signature(tmp_path):
    app = write_app(
        tmp_path / "app",
        lb_manifest(("hello", "hello", "GET", "/hello/{who}")),
        {"hello.py": HELLO},
    )
    assert "{who}" in _fails(app)["error"]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"FLASH_SYNC_THREADS": "0"}, "FLASH_SYNC_THREADS"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"FLASH_OPENAPI": "maybe"}, "FLASH_OPENAPI"),
        ({"FLASH_GRACEFUL_TIMEOUT": "-1"}, "FLASH_GRACEFUL_TIMEOUT"),
    ],
)
def test_bad_setting_is_a_startup_error(tmp_path, env, message):
    result = run_check(CORE_APP, {**env, "_ARGS": "--check"})
    assert result.returncode == 2
    assert message in startup_error(result)["error"]


def test_check_passes_on_a_good_app():
    result = run_check(CORE_APP, {"_ARGS": "--check"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"check passed"' in result.stdout


def test_port_in_use_is_a_startup_error(tmp_path):
    with Worker(CORE_APP) as first:
        first.wait_ready()
        result = run_check(CORE_APP, {"PORT": str(first.port)})
        assert result.returncode == 1
        assert "cannot listen" in startup_error(result)["error"]


def test_unknown_manifest_fields_never_fail_a_boot():
    # tests/core_app's manifest carries extra fields and a queue resource the runtime ignores.
    manifest = json.loads((CORE_APP / "flash_manifest.json").read_text())
    assert "some_future_field" in manifest["resources"]["core"]
    assert run_check(CORE_APP, {"_ARGS": "--check"}).returncode == 0


# --- dependency isolation -------------------------------------------------------------------

POISON = "raise ImportError('the application folder shadowed the runtime: {name}')\n"


def test_bundled_copies_of_runtime_dependencies_do_not_replace_the_runtimes(tmp_path):
    shadowed = [
        "starlette",
        "msgspec",
        "orjson",
        "structlog",
        "hypercorn",
        "h11",
        "multipart",
        "anyio",
    ]
    files = {f"{name}/__init__.py": POISON.format(name=name) for name in shadowed}
    files["python_multipart/__init__.py"] = POISON.format(name="python_multipart")
    files["hello.py"] = (
        "import starlette, msgspec\n"
        "async def hello() -> dict:\n"
        "    return {'starlette': starlette.__file__, 'msgspec': msgspec.__file__}\n"
        "def upload(data: bytes) -> dict:\n"
        "    return {'size': len(data)}\n"
    )
    app = write_app(
        tmp_path / "app",
        lb_manifest(("hello", "hello", "GET", "/hello"), ("hello", "upload", "POST", "/upload")),
        files,
    )
    with Worker(app) as worker:
        worker.wait_ready()
        paths = httpx.get(worker.url + "/hello").json()
        assert str(app) not in paths["starlette"] and str(app) not in paths["msgspec"]
        # Multipart parsing imports lazily inside Starlette: it must still be the runtime's copy.
        r = httpx.post(worker.url + "/upload", files={"data": ("a.bin", b"12345")})
        assert r.status_code == 200 and r.json() == {"size": 5}


def test_app_venv_packages_are_importable(tmp_path):
    venv_site = tmp_path / "appvenv" / "lib" / "python3.11" / "site-packages"
    write_app(venv_site, None, {"applib/__init__.py": "VALUE = 'from the app venv'\n"})
    app = write_app(
        tmp_path / "app",
        lb_manifest(("hello", "hello", "GET", "/hello")),
        {
            "hello.py": "import applib\nasync def hello() -> dict:\n    return {'value': applib.VALUE}\n",
        },
    )
    with Worker(app, env={"FLASH_APP_VENV": str(tmp_path / "appvenv")}) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/hello").json() == {"value": "from the app venv"}


@pytest.mark.parametrize("include", [True, False])
def test_an_app_venv_with_system_site_packages_sees_its_base_interpreters_packages(
    tmp_path, include
):
    """As the venv's own python does: `include-system-site-packages = true` in its pyvenv.cfg adds
    the base interpreter's site-packages (the GPU image's torch and numpy), after the venv's own."""
    import sys as _sys

    version = f"python{_sys.version_info.major}.{_sys.version_info.minor}"
    base = tmp_path / "base"
    (base / "bin").mkdir(parents=True)
    write_app(
        base / "lib" / version / "site-packages", None, {"baselib.py": "VALUE = 'from the base'\n"}
    )
    venv = tmp_path / "appvenv"
    write_app(
        venv / "lib" / version / "site-packages",
        None,
        {"applib.py": "VALUE = 'from the app venv'\n"},
    )
    (venv / "pyvenv.cfg").write_text(
        f"home = {base / 'bin'}\ninclude-system-site-packages = {str(include).lower()}\n"
    )
    app = write_app(
        tmp_path / "app",
        lb_manifest(("hello", "hello", "GET", "/hello")),
        {
            "hello.py": "import applib, baselib\nasync def hello() -> dict:\n    return {'values': [applib.VALUE, baselib.VALUE]}\n",
        },
    )
    env = {"FLASH_APP_VENV": str(venv), "_ARGS": "--check"}
    result = run_check(app, env)
    if include:
        assert result.returncode == 0, result.stdout
    else:
        assert result.returncode == 1 and "No module named 'baselib'" in result.stdout


def test_listening_before_import(tmp_path):
    """The port answers while a module import is still running: the import waits for a file that
    the test writes only once /ping has answered 204."""
    release = tmp_path / "release"
    app = write_app(
        tmp_path / "app",
        lb_manifest(("slowmod", "hello", "GET", "/hello")),
        {
            "slowmod.py": f"import os, time\nwhile not os.path.exists({str(release)!r}):\n    time.sleep(0.02)\n"
            + HELLO,
        },
    )
    with Worker(app) as worker:
        worker.wait_status(204, timeout=30)
        assert not [line for line in worker.logs() if line["event"] == "boot"]
        release.touch()
        worker.wait_ready()
