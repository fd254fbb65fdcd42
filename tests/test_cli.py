"""The command line: `serve PATH` (a project, a `.flash` build layout, --reload) and `check PATH`."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support import ENTRYPOINT, ROOT, Worker, clean_env, free_port, json_records

from runtime.cli import AppNotFound, app_folder, build_parser, command_environment, find_manifest

DEMO = ROOT / "tests" / "apps" / "demo"
MULTI = ROOT / "tests" / "apps" / "multi"


def serve(path: Path | str, *flags: str, env: dict[str, str] | None = None) -> Worker:
    """`entrypoint.py serve PATH --port N` with FLASH_MODULE_PATH pointing elsewhere: the flags win."""
    port = free_port()
    worker = Worker(
        ROOT / "manifests" / "example",
        env=env,
        args=("serve", str(path), "--port", str(port), *flags),
    )
    worker.port = worker.health_port = port
    return worker


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = clean_env()
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *args],
        env={**env, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def json_lines(text: str) -> list[dict]:
    return json_records(text.splitlines())


def copy_app(source: Path, target: Path) -> Path:
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns("__pycache__", "reference.json", "cases.json")
    )
    return target


def wait_answer(worker: Worker, path: str, expected: object, timeout: float = 30.0) -> None:
    """Poll `path` until it answers `expected` (a restarting worker refuses connections meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = httpx.get(worker.url + path, timeout=2).json()
        except (httpx.HTTPError, ValueError):
            answer = None
        if answer == expected:
            return
        assert time.monotonic() < deadline, worker.output()[-3000:]
        time.sleep(0.1)


# --- serve -----------------------------------------------------------------------------------------


def test_serve_a_project_folder_by_path():
    with serve(DEMO) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/health").json() == {"status": "healthy"}
        boot = worker.wait_log(lambda line: line.get("event") == "boot")
        assert boot["settings"]["module_path"] == str(DEMO)
        assert boot["settings"]["host"] == "127.0.0.1"  # a development server stays on loopback
        assert f"docs: http://localhost:{worker.port}/docs" in worker.output()


def test_serve_the_flash_build_layout(tmp_path):
    project = copy_app(DEMO, tmp_path / "demo")
    (project / ".flash").mkdir()
    (project / "flash_manifest.json").rename(project / ".flash" / "flash_manifest.json")
    with serve(project) as worker:
        worker.wait_ready()
        response = httpx.post(worker.url + "/process", json={"input_data": {"a": 1}})
        assert response.status_code == 200 and response.json()["echo"] == {"a": 1}
        settings = worker.wait_log(lambda line: line.get("event") == "boot")["settings"]
        assert settings["module_path"] == str(project)
        assert settings["manifest_path"] == str(project / ".flash" / "flash_manifest.json")


def test_serve_picks_the_resource_of_a_multi_resource_app():
    with serve(MULTI, "--resource", "beta") as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/whoami").json() == {"resource": "beta"}


def test_serve_a_folder_without_a_manifest_names_where_it_looked(tmp_path):
    result = run_cli("serve", str(tmp_path))
    assert result.returncode == 2
    [error] = [line for line in json_lines(result.stdout) if line["event"] == "startup error"]
    assert str(tmp_path / ".flash") in error["error"] and "flash build" in error["error"]


def test_reload_restarts_the_worker_on_an_edited_handler(tmp_path):
    project = copy_app(DEMO, tmp_path / "demo")
    with serve(project, "--reload") as worker:
        worker.wait_ready()
        worker.wait_log(lambda line: line.get("event") == "watching for changes")
        assert httpx.get(worker.url + "/health").json() == {"status": "healthy"}
        handler = project / "lb_worker.py"
        handler.write_text(
            handler.read_text().replace('{"status": "healthy"}', '{"status": "edited"}')
        )
        reload = worker.wait_log(lambda line: line.get("event") == "reload", timeout=20)
        assert reload["changed"] == ["lb_worker.py"]
        wait_answer(
            worker, "/health", {"status": "edited"}
        )  # the old worker drained, a new one imported the edit
        worker.signal()
        assert worker.wait_exit() == 0
    with pytest.raises(httpx.ConnectError):  # the supervisor took its worker with it
        httpx.get(worker.url + "/health", timeout=2)


def test_reload_survives_a_broken_edit_and_serves_the_fix(tmp_path):
    project = copy_app(DEMO, tmp_path / "demo")
    with serve(project, "--reload") as worker:
        worker.wait_ready()
        worker.wait_log(lambda line: line.get("event") == "watching for changes")
        handler = project / "lb_worker.py"
        good = handler.read_text()
        handler.write_text(good + "\nthis is not python\n")
        worker.wait_log(
            lambda line: line.get("event") == "worker exited, waiting for a change", timeout=30
        )
        handler.write_text(good.replace('{"status": "healthy"}', '{"status": "fixed"}'))
        wait_answer(worker, "/health", {"status": "fixed"})


# --- check -----------------------------------------------------------------------------------------


def test_check_loads_every_load_balanced_resource():
    result = run_cli("check", str(MULTI))
    assert result.returncode == 0, result.stdout[-3000:]
    passed = [line for line in json_lines(result.stdout) if line["event"] == "check passed"]
    assert {line["resource"] for line in passed} == {"alpha", "beta"}


def test_check_fails_naming_the_broken_resource(tmp_path):
    app = copy_app(MULTI, tmp_path / "multi")
    module = app / "beta_api.py"
    module.write_text(module.read_text().replace("def mul(", "def renamed_mul("))
    result = run_cli("check", str(app))
    assert result.returncode == 1
    lines = json_lines(result.stdout)
    assert [line["resource"] for line in lines if line["event"] == "check passed"] == ["alpha"]
    [error] = [line for line in lines if line["event"] == "startup error"]
    assert "resources.beta.functions[1] (mul)" in error["error"]
    [summary] = [line for line in lines if line["event"] == "check failed"]
    assert summary["failed"] == ["beta"] and summary["passed"] == ["alpha"]


def test_check_unpacks_an_artifact_once_then_checks_its_resources(tmp_path):
    env = clean_env()
    env.update(
        LOG_FORMAT="json",
        FLASH_ARTIFACT_PATH=str(ROOT / "tests" / "apps" / "kinds" / "artifact.tar.gz"),
    )
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "check", str(tmp_path / "app")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert [
        line["resource"] for line in json_lines(result.stdout) if line["event"] == "check passed"
    ] == ["kinds"]
    assert (tmp_path / "app" / "flash_manifest.json").is_file()


def test_check_of_one_named_resource():
    result = run_cli("check", str(MULTI), "--resource", "alpha")
    assert result.returncode == 0
    assert [
        line["resource"] for line in json_lines(result.stdout) if line["event"] == "check passed"
    ] == ["alpha"]


def test_check_defaults_to_the_current_directory():
    result = run_cli("check", cwd=DEMO)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_environment_only_check_still_refuses_two_resources():
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "--check"],
        capture_output=True,
        text=True,
        env={**clean_env(), "FLASH_MODULE_PATH": str(MULTI)},
        timeout=120,
    )
    assert (
        result.returncode == 1 and "several load-balanced resources (alpha, beta)" in result.stdout
    )


# --- flags to environment (in-process) -------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_flags_are_the_environment_variables(tmp_path):
    (tmp_path / "flash_manifest.json").write_text("{}")
    env = command_environment(
        parse("serve", str(tmp_path), "--resource", "r", "--port", "9001", "--host", "::"), {}
    )
    assert env["FLASH_MODULE_PATH"] == str(tmp_path)
    assert env["FLASH_MANIFEST_PATH"] == str(tmp_path / "flash_manifest.json")
    assert (env["FLASH_RESOURCE_NAME"], env["PORT"], env["HOST"]) == ("r", "9001", "::")


def test_without_a_path_the_environment_names_the_app(tmp_path):
    env = command_environment(
        parse("check"), {"FLASH_MODULE_PATH": str(tmp_path), "HOST": "0.0.0.0"}
    )
    assert env == {}


def test_a_manifest_file_as_path(tmp_path):
    (tmp_path / ".flash").mkdir()
    manifest = tmp_path / ".flash" / "flash_manifest.json"
    manifest.write_text("{}")
    assert find_manifest(manifest) == manifest and find_manifest(tmp_path) == manifest
    assert app_folder(manifest) == tmp_path
    with pytest.raises(AppNotFound):
        find_manifest(tmp_path / "missing")


# --- the Makefile ----------------------------------------------------------------------------------


def test_make_help_lists_every_target():
    makefiles = [ROOT / "Makefile", *ROOT.glob("*/*.mk")]
    targets = {
        match
        for path in makefiles
        for match in re.findall(r"^([a-z][a-z-]*):(?!=)", path.read_text(), re.M)
    }
    assert {"run", "dev", "test", "bench", "cluster", "image-cpu"} <= targets
    shown = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    listed = set(re.findall(r"make ([a-z][a-z-]*)", shown))
    assert targets - {"help"} <= listed, targets - listed


def test_make_run_serves_app_with_the_serving_virtualenv_only():
    plan = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "run",
            "APP=tests/apps/multi",
            "PORT=9123",
            "RUN_ARGS=--resource alpha",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [command] = [line for line in plan.splitlines() if "entrypoint.py" in line]
    assert (
        ".venv-run/bin/python entrypoint.py serve tests/apps/multi --port 9123 --resource alpha"
        in command
    )
    assert "[dev]" not in plan
