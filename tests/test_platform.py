"""Started the way Runpod starts a Flash load-balanced worker: as root, the build artifact mounted
under a folder only root can read, the platform's env, a privileged port, a dotted FLASH_MODULE_PATH.

The worker must unpack the artifact, drop to uid 10001 before it reads the archive or imports the
app, and serve. uid 10001 cannot read this machine's Python (it lives under /root), so these
workers run on the system's Python of the same version, with the project's virtual environment on
PYTHONPATH: the real privilege drop, on the host. Fast in-process checks of the settings that
decide all of this come first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import ROOT, Worker, run_check

from runtime.manifest import platform_name
from runtime.settings import Settings, SettingsError

KINDS = ROOT / "tests" / "apps" / "kinds"
ARTIFACT = KINDS / "artifact.tar.gz"  # a real `flash build` artifact (runpod_flash excluded)
APP_USER = 10001
DEPLOYED = {
    "RUNPOD_ENDPOINT_ID": "ep-test",
    "RUNPOD_POD_ID": "pod-test",
    "FLASH_ENDPOINT_TYPE": "lb",
    "FLASH_RESOURCE_NAME": "live-kinds-fb",
    "FLASH_APP": "kinds",
    "FLASH_ENV": "production",
    "RUNPOD_API_KEY": "test-key",
    "FLASH_MODULE_PATH": "kinds_api",
    "FLASH_USER": f"{APP_USER}:{APP_USER}",
}


# --- the settings, in process -------------------------------------------------------------------


def test_a_dotted_module_path_names_a_module_and_the_app_folder_is_the_working_directory(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"FLASH_MODULE_PATH": "pkg.api"})
    assert settings.module_name == "pkg.api"
    assert settings.module_path == (Path("/app") if Path("/app").is_dir() else tmp_path.resolve())
    assert settings.manifest_path == settings.module_path / "flash_manifest.json"


def test_a_folder_module_path_stays_a_folder(tmp_path, monkeypatch):
    (tmp_path / "app").mkdir()
    monkeypatch.chdir(tmp_path)
    assert (
        Settings.from_env({"FLASH_MODULE_PATH": "app"}).module_name is None
    )  # an existing folder wins
    assert Settings.from_env({"FLASH_MODULE_PATH": str(tmp_path)}).module_path == tmp_path.resolve()


@pytest.mark.parametrize(
    "env, unpacks",
    [
        ({"RUNPOD_ENDPOINT_ID": "e", "FLASH_ENDPOINT_TYPE": "lb"}, True),
        ({"RUNPOD_ENDPOINT_ID": "e", "FLASH_ENDPOINT_TYPE": "qb"}, True),
        ({"RUNPOD_ENDPOINT_ID": "e", "FLASH_RESOURCE_NAME": "api"}, True),
        ({"RUNPOD_ENDPOINT_ID": "e"}, False),
        ({"FLASH_ENDPOINT_TYPE": "lb", "FLASH_RESOURCE_NAME": "api"}, False),
        (
            {"RUNPOD_ENDPOINT_ID": "e", "FLASH_ENDPOINT_TYPE": "lb", "FLASH_DISABLE_UNPACK": "1"},
            False,
        ),
        (
            {
                "RUNPOD_ENDPOINT_ID": "e",
                "FLASH_ENDPOINT_TYPE": "lb",
                "FLASH_DISABLE_UNPACK": "true",
            },
            False,
        ),
    ],
)
def test_the_platform_artifact_is_unpacked_only_on_a_deployed_worker(env, unpacks):
    settings = Settings.from_env(env)
    assert (settings.artifact_path is not None) is unpacks
    if unpacks:
        assert settings.artifact_path == Path("/root/.runpod/artifact.tar.gz")
        assert (
            settings.artifact_setting == "FLASH_BUILD_ARTIFACT_PATH"
            and settings.artifact_wait == 90.0
        )


def test_the_artifact_path_and_wait_are_settings():
    env = {
        "RUNPOD_ENDPOINT_ID": "e",
        "FLASH_ENDPOINT_TYPE": "lb",
        "FLASH_BUILD_ARTIFACT_PATH": "/mnt/a.tar.gz",
        "FLASH_ARTIFACT_WAIT": "5",
    }
    settings = Settings.from_env(env)
    assert (settings.artifact_path, settings.artifact_wait) == (Path("/mnt/a.tar.gz"), 5.0)
    explicit = Settings.from_env({**env, "FLASH_ARTIFACT_PATH": "/tmp/b.tar.gz"})
    assert (explicit.artifact_setting, explicit.artifact_wait) == ("FLASH_ARTIFACT_PATH", 0.0)


@pytest.mark.parametrize(
    "name, manifest_name",
    [
        ("api", "api"),
        ("live-api", "api"),
        ("api-fb", "api"),
        ("live-api-fb", "api"),
        ("live-live-x", "live-x"),
    ],
)
def test_resource_names_are_matched_as_runpod_flash_matches_them(name, manifest_name):
    assert platform_name(name) == manifest_name


def test_flash_user_root_is_refused_on_a_deployed_worker():
    with pytest.raises(SettingsError, match="never runs as root"):
        Settings.from_env({"FLASH_USER": "root", "RUNPOD_POD_ID": "p"})
    with pytest.raises(SettingsError, match="no user named"):
        Settings.from_env({"FLASH_USER": "no-such-user-here"})
    assert Settings.from_env({}).run_as.uid == APP_USER


# --- the real thing: subprocesses started as root -----------------------------------------------


def system_python() -> tuple[str, dict[str, str]]:
    """A Python of this version that uid 10001 can run, and the env that finds the project on it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = shutil.which(version, path="/usr/local/bin:/usr/bin")
    assert python, (
        f"no {version} outside /root for uid {APP_USER} to run (apt-get install {version})"
    )
    pythonpath = os.pathsep.join([sysconfig.get_paths()["purelib"], str(ROOT)])
    return python, {"PYTHONPATH": pythonpath}


@pytest.fixture
def root_only(tmp_path: Path) -> Path:
    """A folder like /root/.runpod: root may read it, uid 10001 may not."""
    assert os.geteuid() == 0, "these tests start the worker as root, as the platform does"
    folder = tmp_path / "runpod"
    folder.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    return folder


@pytest.fixture
def app_folder() -> Iterator[Path]:
    """The working directory of a worker whose FLASH_MODULE_PATH is dotted: the app folder."""
    assert not Path("/app").exists(), (
        "/app exists on this machine: a dotted FLASH_MODULE_PATH would unpack there"
    )
    folder = Path(tempfile.mkdtemp(prefix="flash-platform-"))
    os.chown(folder, APP_USER, APP_USER)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def privileged_port() -> int:
    """A free port below 1024: only a process that binds before dropping root can listen on it."""
    for port in range(1023, 600, -1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 1024")


def platform_worker(app_folder: Path, artifact: Path, **env: str) -> Worker:
    python, python_env = system_python()
    port = str(privileged_port())
    return Worker(
        "",
        python=python,
        cwd=app_folder,
        env={
            **python_env,
            **DEPLOYED,
            "FLASH_BUILD_ARTIFACT_PATH": str(artifact),
            "PORT": port,
            "PORT_HEALTH": port,
            **env,
        },
    )


def process_ids(pid: int) -> tuple[list[int], list[int]]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split()[1:] for line in status}
    return [int(v) for v in fields["Uid"]], [int(v) for v in fields["Gid"]]


def reference_answer(case: str) -> tuple[dict, dict]:
    cases = {c["name"]: c for c in json.loads((KINDS / "cases.json").read_text())["cases"]}
    return cases[case], json.loads((KINDS / "reference.json").read_text())["answers"][case]


def assert_answers_like_the_reference(worker: Worker) -> None:
    for name in ("search_all", "scalars_ok", "get_item_ok"):
        case, answer = reference_answer(name)
        response = httpx.request(
            case["method"],
            worker.url + case["path"],
            params=case.get("query"),
            json=case.get("json"),
            timeout=10,
        )
        assert response.status_code == answer["status"], name
        assert response.json() == answer["json"], name


def test_a_deployed_worker_unpacks_the_mounted_artifact_binds_port_80_style_and_runs_as_10001(
    root_only, app_folder
):
    shutil.copy(ARTIFACT, root_only / "artifact.tar.gz")
    with platform_worker(app_folder, root_only / "artifact.tar.gz") as worker:
        worker.wait_ready(timeout=60)
        assert worker.port < 1024
        assert process_ids(worker.proc.pid) == ([APP_USER] * 4, [APP_USER] * 4)
        dropped = worker.wait_log(lambda line: line["event"] == "dropped privileges")
        unpacked = worker.wait_log(lambda line: line["event"] == "unpacked")
        boot = worker.wait_log(lambda line: line["event"] == "boot")
        assert worker.logs().index(dropped) < worker.logs().index(
            unpacked
        )  # the archive is read as 10001
        assert boot["resource"] == "kinds" and boot["uid"] == APP_USER
        assert {"artifact_wait", "unpack", "import"} <= set(boot["phases_ms"])
        assert_answers_like_the_reference(worker)
        manifest = app_folder / "flash_manifest.json"
        assert manifest.is_file() and manifest.stat().st_uid == APP_USER
        worker.signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=30) == 0
    assert not [p for p in app_folder.iterdir() if p.name.startswith(".flash-unpack-")]


def test_an_artifact_mounted_late_is_waited_for_while_ping_says_204(root_only, app_folder):
    artifact = root_only / "artifact.tar.gz"
    # No RUNPOD_API_KEY (an app that makes no remote calls): runpod_flash then reads
    # $HOME/.runpod/config.toml at import, so HOME must not stay root's after the drop.
    with platform_worker(app_folder, artifact, RUNPOD_API_KEY="") as worker:
        waiting = worker.wait_log(
            lambda line: line["event"] == "waiting for the build artifact", timeout=30
        )
        assert waiting["path"] == str(artifact) and waiting["up_to_s"] == 90.0
        assert httpx.get(worker.url + "/ping", timeout=5).status_code == 204
        assert (
            process_ids(worker.proc.pid)[0][0] == 0
        )  # nothing of the app or archive is touched yet
        partial = root_only / ".partial"
        shutil.copy(ARTIFACT, partial)
        partial.rename(artifact)  # the volume appears
        worker.wait_ready(timeout=60)
        assert process_ids(worker.proc.pid)[0] == [APP_USER] * 4
        assert_answers_like_the_reference(worker)


def test_no_artifact_within_the_wait_is_a_startup_error(root_only, app_folder):
    result = run_check(
        "",
        {
            **DEPLOYED,
            "FLASH_BUILD_ARTIFACT_PATH": str(root_only / "missing.tar.gz"),
            "FLASH_ARTIFACT_WAIT": "0.5",
        },
        cwd=app_folder,
    )
    assert result.returncode == 1
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"startup error"' in line]
    assert len(errors) == 1
    assert (
        "FLASH_BUILD_ARTIFACT_PATH" in errors[0]["error"]
        and "after waiting 0.5 s" in errors[0]["error"]
    )


def test_an_artifact_the_worker_cannot_read_is_one_startup_error_line(root_only, app_folder):
    """Started as non-root (runAsNonRoot), the artifact under a root-only folder cannot be opened."""
    shutil.copy(ARTIFACT, root_only / "artifact.tar.gz")
    python, python_env = system_python()
    result = run_check(
        "",
        {**DEPLOYED, **python_env, "FLASH_BUILD_ARTIFACT_PATH": str(root_only / "artifact.tar.gz")},
        python=python,
        cwd=app_folder,
        user=APP_USER,
    )
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"startup error"' in line]
    assert (
        len(errors) == 1
        and "cannot read" in errors[0]["error"]
        and "Permission denied" in errors[0]["error"]
    )


def test_started_as_non_root_the_worker_serves_as_that_user(app_folder):
    python, python_env = system_python()
    shutil.copytree(KINDS, app_folder, dirs_exist_ok=True)
    env = {
        **python_env,
        "FLASH_USER": "",
        "HOME": str(app_folder),
    }  # a login shell's HOME for that user
    with Worker(app_folder, python=python, user=APP_USER, env=env) as worker:
        worker.wait_ready(timeout=60)
        assert process_ids(worker.proc.pid)[0] == [APP_USER] * 4
        assert not [line for line in worker.logs() if line["event"] == "dropped privileges"]
        assert_answers_like_the_reference(worker)


def test_a_dotted_module_path_must_be_a_module_of_the_resource():
    result = run_check("", {"FLASH_MODULE_PATH": "cpu_lb", "_ARGS": "--check"}, cwd=KINDS)
    assert result.returncode == 1
    error = next(
        json.loads(line) for line in result.stdout.splitlines() if '"startup error"' in line
    )
    assert "FLASH_MODULE_PATH='cpu_lb' is not a module of resource 'kinds'" in error["error"]
    assert "kinds_api" in error["error"]
    ok = run_check("", {"FLASH_MODULE_PATH": "kinds_api", "_ARGS": "--check"}, cwd=KINDS)
    assert ok.returncode == 0, ok.stdout


def test_a_hostile_artifact_is_refused_on_a_python_without_tarfile_filters(root_only, app_folder):
    """Debian 12's Python 3.11.2 has no extraction filters; the unpacker does not rely on them."""
    archive = root_only / "chain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, target in (("z", "."), ("z/q", "..")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        info = tarfile.TarInfo("z/q/escape.py")
        info.mode = 0o4777
        tar.addfile(info)
    python, python_env = system_python()
    result = run_check(
        "",
        {**DEPLOYED, **python_env, "FLASH_BUILD_ARTIFACT_PATH": str(archive), "_ARGS": "--check"},
        python=python,
        cwd=app_folder,
    )
    assert result.returncode == 1
    assert "would be written through the link 'z'" in result.stdout
    assert list(app_folder.iterdir()) == [] and not (app_folder.parent / "escape.py").exists()
    assert stat.S_IMODE(app_folder.stat().st_mode) == 0o700


@pytest.fixture
def volume() -> Iterator[Path]:
    """As /runpod-volume: a folder of root's that uid 10001 may enter but not write."""
    folder = Path(tempfile.mkdtemp(prefix="flash-volume-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_cache_on_a_root_owned_volume_is_made_for_10001_and_hit_on_the_next_start(
    root_only, app_folder, volume
):
    """The worker makes its cache folder on the volume as root, gives it to 10001 and fills it after
    the drop; the next start links the entry."""
    shutil.copy(ARTIFACT, root_only / "artifact.tar.gz")
    cache = volume / ".flash-cache"
    for expected in ("miss", "hit"):
        with platform_worker(
            app_folder, root_only / "artifact.tar.gz", FLASH_CACHE_DIR=str(cache)
        ) as worker:
            worker.wait_ready(timeout=60)
            line = worker.wait_log(lambda record: record["event"] == "artifact cache")
            assert line["result"] == expected, worker.output()
            assert process_ids(worker.proc.pid)[0] == [APP_USER] * 4
            assert_answers_like_the_reference(worker)
    st = cache.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (APP_USER, APP_USER, 0o700)
    assert (app_folder / "flash_manifest.json").is_symlink()
