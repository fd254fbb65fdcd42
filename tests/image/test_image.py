"""The CPU and GPU images, built from the real Dockerfiles on stand-in bases, and downstream images
run with podman: the platform's start (root, no command, the artifact mounted, PORT=80), serving,
the process tree, graceful shutdown, the app's own requirements, torch and numpy from the GPU base.

Run by `make test-image` (it installs the tools first); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
import tomllib
from podman_support import (
    APPS,
    CACHE,
    IMAGE_SOURCE,
    ROOT,
    STANDIN_PYTHON,
    Container,
    Podman,
    app_packages,
    revision,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("FLASH_IMAGE_TEST") != "1", reason="image test: run `make test-image`"
)

RUNTIME_PYTHON = "/opt/flash/venv/bin/python"
ENTRYPOINT = ["/usr/bin/tini", "--", RUNTIME_PYTHON, "/opt/flash/entrypoint.py"]
ARTIFACT = "/root/.runpod/artifact.tar.gz"

# What the platform sets when it starts a flash-lb worker (besides the mount of the artifact).
PLATFORM_ENV = {
    "RUNPOD_ENDPOINT_ID": "ep-image-test",
    "RUNPOD_POD_ID": "pod-image-test",
    "FLASH_ENDPOINT_TYPE": "lb",
    "FLASH_APP": "image-test",
    "FLASH_ENV": "production",
    "RUNPOD_API_KEY": "rpa_not_a_real_key",
    "PORT": "80",
    "PORT_HEALTH": "80",
}

# tests/image/apps/lb_app's routes: the requests and what runpod_flash's create_lb_handler
# (FastAPI 0.165 on uvicorn, the reference) answered to them. Compared as tests/test_compat.py
# compares: the status; 2xx, 404 and 405 bodies whole; a 422's errors by `loc` and `type`; a 500 is
# `{"detail": "Internal Server Error"}` here (the reference's is plain text, see the README).
LB_APP_CASES = [
    ("GET", "/health", None, 200, {"status": "healthy", "service": "cpu"}),
    (
        "POST",
        "/analyze",
        {"text": "the cat and the hat"},
        200,
        {"words": 5, "characters": 19, "top": ["the", "cat"]},
    ),
    (
        "POST",
        "/analyze",
        {"text": "a b a", "top": 1},
        200,
        {"words": 3, "characters": 5, "top": ["a"]},
    ),
    (
        "POST",
        "/analyze",
        {},
        422,
        {
            "detail": [
                {"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": {}}
            ]
        },
    ),
    ("POST", "/analyze", {"text": "   "}, 500, {"detail": "Internal Server Error"}),
    ("GET", "/items/7?verbose=true", None, 200, {"id": 7, "label": "item-7"}),
    ("GET", "/items/7", None, 200, {"id": 7}),
    (
        "GET",
        "/items/x",
        None,
        422,
        {
            "detail": [
                {
                    "type": "int_parsing",
                    "loc": ["path", "item_id"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "input": "x",
                }
            ]
        },
    ),
    ("GET", "/nope", None, 404, {"detail": "Not Found"}),
    ("GET", "/analyze", None, 405, {"detail": "Method Not Allowed"}),
]


def assert_lb_app_answers_as_the_reference(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for method, path, body, status, expected in LB_APP_CASES:
            response = (
                client.request(method, path, json=body)
                if body is not None
                else client.request(method, path)
            )
            assert response.status_code == status, (method, path, response.text)
            assert (
                "traceback" not in response.text.lower() and "cannot be empty" not in response.text
            )
            if status == 422:
                errors = [(e["loc"], e["type"]) for e in response.json()["detail"]]
                assert errors == [(e["loc"], e["type"]) for e in expected["detail"]], (method, path)
            elif status == 500:
                assert response.json()["detail"] == expected["detail"], (method, path)
            else:
                assert response.json() == expected, (method, path)


def watch_ping(container: Container, timeout: float = 120.0) -> list[int]:
    """Poll /ping until it answers 200; the distinct statuses seen, in order."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = httpx.get(container.url + "/ping", timeout=2.0).status_code
        except httpx.HTTPError:
            assert container.running(), f"the container exited; logs:\n{container.log_text()}"
        else:
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == 200:
                return seen
        time.sleep(0.02)
    raise AssertionError(f"/ping never answered 200 (seen {seen}); logs:\n{container.log_text()}")


def worker_pid(container: Container) -> str:
    workers = [
        p
        for p in container.processes()
        if "/opt/flash/entrypoint.py" in p["args"] and p["pid"] != "1"
    ]
    assert len(workers) == 1, container.processes()
    return workers[0]["pid"]


def assert_worker_runs_as_flash_user(container: Container) -> None:
    """PID 1 is tini (root, so it can signal and reap); the worker runs as 10001:10001 with no
    supplementary groups, after it bound port 80 as root."""
    processes = container.processes()
    init = next(p for p in processes if p["pid"] == "1")
    assert init["args"].startswith("/usr/bin/tini -- ")
    pid = worker_pid(container)
    status = container.process_status(pid)
    assert status["Uid"].split() == ["10001"] * 4, status
    assert status["Gid"].split() == ["10001"] * 4, status
    assert status["Groups"] == "", status
    assert next(p for p in processes if p["pid"] == pid)["ppid"] == "1"


def assert_sigterm_drains(container: Container) -> None:
    container.podman.run("kill", "--signal", "TERM", container.name)
    assert container.exit_code() == 0, container.log_text()
    events = [record.get("event") for record in container.logs()]
    assert "draining" in events and "stopped" in events, container.log_text()
    assert events.index("draining") < events.index("stopped")


# The images themselves


def test_standin_base_has_the_layout_and_env_of_python_slim(
    podman: Podman, standin_base: str
) -> None:
    # The CPU Dockerfile's build argument once was PYTHON_VERSION, which python:slim's ENV of that
    # name overrode; the stand-in sets it too, so that class of error fails the build here.
    env = dict(item.split("=", 1) for item in podman.inspect(standin_base)["Config"]["Env"])
    assert (
        env["PYTHON_VERSION"].startswith(STANDIN_PYTHON + ".")
        and env["PYTHON_VERSION"] != STANDIN_PYTHON
    )
    assert env["PATH"].split(":")[0] == "/usr/local/bin"
    assert env["LANG"] == "C.UTF-8"
    found = podman.output(standin_base, "sh", "-c", "command -v python; command -v python3")
    assert found.split() == ["/usr/local/bin/python", "/usr/local/bin/python3"]


def test_cpu_image_config(podman: Podman, cpu_image: str) -> None:
    image = podman.inspect(cpu_image)
    config = image["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config.get("User", "") == ""  # root: the runtime drops to 10001 itself
    assert config["WorkingDir"] == "/app"
    assert "8000/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"] == ENTRYPOINT
    assert not config.get("Cmd")
    assert image["Healthcheck"]["Test"] == [
        "CMD",
        RUNTIME_PYTHON,
        "-I",
        "/opt/flash/healthcheck.py",
    ]
    assert env["FLASH_MODULE_PATH"] == "/app"
    assert env["FLASH_APP_VENV"] == "/opt/app"
    assert env["FLASH_PYTHON_VERSION"] == STANDIN_PYTHON
    assert env["PATH"].split(":")[0] == "/opt/app/bin"
    assert env["PYTHON_VERSION"].startswith(STANDIN_PYTHON + ".")  # the base's, untouched


def test_images_carry_oci_labels(podman: Podman, cpu_image: str, gpu_image: str) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    head = revision()
    for image, title in ((cpu_image, "flash-lb-cpu"), (gpu_image, "flash-lb")):
        labels = podman.inspect(image)["Config"]["Labels"]
        assert labels["org.opencontainers.image.title"] == title
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.revision"] == head and len(head) == 40
        assert labels["org.opencontainers.image.source"] == IMAGE_SOURCE


def test_tags_map_onto_the_reference_names() -> None:
    # `make -n` prints the build commands: the tags mirror runpod/flash-lb-cpu:py3.12-latest.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for target, name in (("image-cpu", "flash-lb-cpu"), ("image-gpu", "flash-lb")):
        printed = subprocess.run(
            ["make", "-n", target, "IMAGE_PYTHON=3.13", "CONTAINER_ENGINE=podman"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"-t {name}:py3.13-{version} -t {name}:py3.13-latest" in printed
        assert "--build-arg PYTHON=3.13" in printed and "PYTHON_VERSION" not in printed
        assert "APP_PACKAGES" not in printed  # the Dockerfile's list unless one is given
        lean = subprocess.run(
            ["make", "-n", target, "APP_PACKAGES=", "CONTAINER_ENGINE=podman"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert '--build-arg "APP_PACKAGES="' in lean
    # `make help` names the variable the image targets take.
    printed = subprocess.run(
        ["make", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    image_lines = [line for line in printed.splitlines() if "make image-" in line]
    assert len(image_lines) == 2 and all("IMAGE_PYTHON" in line for line in image_lines), (
        image_lines
    )
    assert "PYTHON_VERSION" not in printed


def test_runtime_python_matches_the_build_argument(podman: Podman, cpu_image: str) -> None:
    version = podman.output(cpu_image, RUNTIME_PYTHON, "-c", "import sys; print(sys.version)")
    assert version.startswith(STANDIN_PYTHON + ".")


def test_runtime_bytecode_is_compiled_at_build(podman: Podman, cpu_image: str) -> None:
    # Every module of the runtime's environment has its .pyc, so a non-root worker (which cannot
    # write there) never compiles at boot.
    script = (
        "import importlib.util, pathlib\n"
        "sources = [p for p in pathlib.Path('/opt/flash').rglob('*.py')]\n"
        "missing = [str(p) for p in sources if not pathlib.Path(importlib.util.cache_from_source(p)).exists()]\n"
        "print(len(sources), *missing[:20], sep='\\n')\n"
    )
    count, *missing = podman.output(cpu_image, RUNTIME_PYTHON, "-c", script).split("\n")
    assert int(count) > 100
    assert [m for m in missing if m] == []


def test_runtime_environment_is_read_only_for_the_worker(podman: Podman, cpu_image: str) -> None:
    paths = ["/opt/flash/venv/lib", "/opt/app/lib", "/app"]
    script = f"import os; print(os.getuid(), *(os.access(p, os.W_OK) for p in {paths!r}))"
    as_worker = podman.output(cpu_image, RUNTIME_PYTHON, "-c", script, user="10001:10001")
    assert as_worker.split() == ["10001", "False", "True", "True"]


def test_images_ship_the_uvicorn_extra(podman: Podman, cpu_image: str, gpu_image: str) -> None:
    for image in (cpu_image, gpu_image):
        loaded = podman.output(
            image, RUNTIME_PYTHON, "-c", "import uvicorn, uvloop, httptools; print('ok')"
        )
        assert loaded.strip() == "ok"


# A downstream image (images/example) on a flash build output


def test_example_image_serves_the_app_as_the_reference(
    podman: Podman, example_image: str, run_container
) -> None:
    container = run_container(example_image)
    assert container.wait_status(200).json() == {"status": "healthy"}
    assert_lb_app_answers_as_the_reference(container.url)
    healthcheck = podman.run("healthcheck", "run", container.name, check=False)
    assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr
    # The same check run by the worker's user (an orchestrator's exec probe may not be root).
    as_worker = podman.run(
        "exec",
        "--user",
        "10001:10001",
        container.name,
        *podman.inspect(example_image)["Healthcheck"]["Test"][1:],
        check=False,
    )
    assert as_worker.returncode == 0, as_worker.stdout + as_worker.stderr


def test_example_image_with_uvicorn(example_image: str, run_container) -> None:
    container = run_container(example_image, env={"FLASH_SERVER": "uvicorn"})
    container.wait_status(200)
    assert_lb_app_answers_as_the_reference(container.url)
    boot = next(r for r in container.logs() if r.get("event") == "boot")
    assert boot["settings"]["server"] == "uvicorn"


def test_example_image_keeps_secrets_and_build_outputs_out(
    podman: Podman, example_image: str
) -> None:
    listing = podman.output(example_image, "ls", "-A", "/app").split()
    assert "lb_worker.py" in listing and "flash_manifest.json" in listing
    for left_out in (".env", ".flash", ".venv"):
        assert left_out not in listing, listing
    # The app's modules are compiled at build time, bundled packages included.
    compiled = podman.output(
        example_image, "sh", "-c", "ls /app/__pycache__ /app/pydantic/__pycache__ | grep -c pyc"
    )
    assert int(compiled) > 10


# Every source under /app whose bytecode Python would accept as it is: a hash-based pyc (checked by
# Python against the source), or a timestamp pyc naming the source's mtime and size.
_VALID_PYC = """
import importlib.util, os, pathlib, sys
sources = list(pathlib.Path("/app").rglob("*.py"))
stale = []
for source in sources:
    try:
        header = pathlib.Path(importlib.util.cache_from_source(str(source))).read_bytes()[:16]
    except OSError:
        stale.append(str(source))
        continue
    flags = int.from_bytes(header[4:8], "little")
    stat = source.stat()
    fresh = header[:4] == importlib.util.MAGIC_NUMBER and (
        flags & 1
        or (int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF)
    )
    if not fresh:
        stale.append(str(source))
print(len(sources), len(stale), *stale[:5])
"""


def test_example_image_ships_bytecode_python_accepts(
    podman: Podman, example_image: str, example_image_uncompiled: str, run_container
) -> None:
    """The example image's /app carries bytecode Python accepts for every module, so a boot compiles
    none of it; the uncompiled build carries none. The time from `podman run` to the first /ping
    200, alternating the two builds, is printed (-rP) for information, not asserted."""
    no_pyc = podman.output(example_image_uncompiled, "sh", "-c", "find /app -name '*.pyc' | wc -l")
    assert int(no_pyc) == 0
    total, stale, *examples = podman.output(example_image, "python3", "-c", _VALID_PYC).split()
    assert int(total) > 0 and int(stale) == 0, examples
    times: dict[str, list[float]] = {"compiled": [], "uncompiled": []}
    for _ in range(4):
        for label, image in (("uncompiled", example_image_uncompiled), ("compiled", example_image)):
            started = time.monotonic()
            container = run_container(image)
            container.wait_status(200, timeout=120)
            times[label].append(time.monotonic() - started)
            podman.run("rm", "--force", "--time", "0", container.name)
    report = {label: [round(t, 2) for t in values] for label, values in times.items()}
    medians = {label: statistics.median(values) for label, values in times.items()}
    print(
        "boot to first 200 (s):",
        json.dumps(report),
        "medians:",
        json.dumps({label: round(value, 2) for label, value in medians.items()}),
    )


def test_sigterm_drains_an_in_flight_request(pinned_image: str, run_container) -> None:
    container = run_container(pinned_image, env={"FLASH_GRACEFUL_TIMEOUT": "20"})
    container.wait_status(200)
    result: dict[str, object] = {}

    def slow_request() -> None:
        try:
            result["response"] = httpx.post(
                container.url + "/slow", json={"seconds": 3}, timeout=30
            )
        except httpx.HTTPError as exc:
            result["error"] = exc

    client = threading.Thread(target=slow_request)
    client.start()
    time.sleep(1.0)  # the request is inside its 3 s handler
    sent = time.monotonic()
    container.podman.run("kill", "--signal", "TERM", container.name)
    container.wait_status(503, timeout=5)
    client.join(timeout=30)
    code = container.exit_code()
    stopped_after = time.monotonic() - sent

    response = result.get("response")
    assert isinstance(response, httpx.Response), result
    assert response.status_code == 200 and response.json() == {"slept": 3}
    assert code == 0
    events = [record.get("event") for record in container.logs()]
    assert "draining" in events and "stopped" in events, container.log_text()
    assert events.index("draining") < events.index("stopped")
    assert stopped_after < 20


def test_app_requirements_leave_the_runtime_alone(
    podman: Podman, pinned_image: str, run_container
) -> None:
    # The pinned Starlette went to the app's environment; the runtime kept its own.
    app_starlette = podman.output(
        pinned_image, "/opt/app/bin/python", "-c", "import starlette; print(starlette.__version__)"
    ).strip()
    runtime_starlette = podman.output(
        pinned_image, RUNTIME_PYTHON, "-c", "import starlette; print(starlette.__version__)"
    ).strip()
    assert app_starlette == "0.27.0"
    assert int(runtime_starlette.split(".")[0]) >= 1 or int(runtime_starlette.split(".")[1]) >= 47

    container = run_container(pinned_image)
    container.wait_status(200)
    seen = httpx.get(container.url + "/versions", timeout=10).json()
    # The app imports its own package from /opt/app, and the server runs on the runtime's Starlette.
    assert seen["humanize_file"].startswith("/opt/app/lib/")
    assert seen["size"] == "30.0 MiB"
    assert seen["starlette"] == runtime_starlette
    assert seen["starlette_file"].startswith("/opt/flash/venv/lib/")
    assert seen["uid"] == 10001


def test_check_fails_the_build_of_a_broken_app(podman: Podman, cpu_image: str) -> None:
    proc = podman.build(
        APPS / "broken" / "Dockerfile",
        APPS / "broken",
        "localhost/flash-broken:standin",
        from_image=cpu_image,
        check=False,
    )
    assert proc.returncode != 0
    assert "no_such_module" in proc.stdout + proc.stderr
    assert not podman.image_exists("localhost/flash-broken:standin")


# Where the platform starts the reference: root, no command, the artifact mounted, PORT=80


def test_platform_start_with_the_artifact_mounted(
    cpu_image: str, lb_artifact: Path, run_container
) -> None:
    container = run_container(
        cpu_image,
        env={
            **PLATFORM_ENV,
            "FLASH_RESOURCE_NAME": "live-lb_worker-fb",
            "FLASH_MODULE_PATH": "lb_worker",
        },
        port=80,
        volumes=(f"{lb_artifact}:{ARTIFACT}:ro",),
    )
    assert watch_ping(container) == [204, 200]
    assert httpx.get(container.url + "/ping", timeout=5).json() == {"status": "healthy"}
    assert_lb_app_answers_as_the_reference(container.url)
    who = httpx.post(container.url + "/whoami", json={}, timeout=10).json()
    assert (who["uid"], who["gid"], who["groups"], who["cwd"]) == (10001, 10001, [], "/app")
    assert who["runpod_flash"].startswith("/app/runpod_flash/")  # the artifact's own copy
    # The artifact's folders identical to the image's app venv were linked to it, not written.
    boot = next(r for r in container.logs() if r.get("event") == "boot")
    links = boot["app_venv_links"]
    print(f"app venv links: {links}, boot phases (ms): {boot['phases_ms']}")
    assert links["linked_dirs"] > 50 and links["linked_files"] > 1000, boot
    linked = dict(
        line.split(" ", 1)
        for line in container.exec("find", "/app", "-type", "l", "-printf", "%p %l\\n").splitlines()
    )
    assert len(linked) == links["linked_dirs"]
    assert all(target == APP_SITE + path[len("/app/") :] for path, target in linked.items())
    assert_worker_runs_as_flash_user(container)
    assert_sigterm_drains(container)


def test_platform_start_with_the_artifact_appearing_late(
    cpu_image: str, lb_artifact: Path, run_container
) -> None:
    with tempfile.TemporaryDirectory(prefix="flash-volume-", dir=CACHE) as volume:
        container = run_container(
            cpu_image,
            env={
                **PLATFORM_ENV,
                "FLASH_RESOURCE_NAME": "lb_worker",
                "FLASH_MODULE_PATH": "lb_worker",
                "FLASH_LINK_APP_VENV": "0",  # every member written: the bytecode store serves them
            },
            port=80,
            volumes=(f"{volume}:/root/.runpod:ro",),
        )
        assert container.wait_status(204, timeout=60).status_code == 204  # waiting for the volume
        time.sleep(10)  # the deliberate delay: the volume's content arrives 10 s after the start
        assert httpx.get(container.url + "/ping", timeout=5).status_code == 204
        assert container.running()
        partial = Path(volume) / ".artifact.partial"
        shutil.copyfile(lb_artifact, partial)
        partial.rename(Path(volume) / "artifact.tar.gz")
        container.wait_status(200, timeout=90)
        assert_lb_app_answers_as_the_reference(container.url)
        # The image's bytecode store (root's, read-only to the worker) served the artifact's
        # copies of the image's own packages on this first start.
        boot = next(r for r in container.logs() if r.get("event") == "boot")
        assert boot["bytecode_store_hits"] > 100 and boot["app_venv_links"] is None, boot
        owner, mode = container.exec("stat", "-c", "%U %a", "/opt/flash/bytecode").split()
        assert (owner, mode) == ("root", "755")
        assert_worker_runs_as_flash_user(container)
        assert_sigterm_drains(container)


# The packages the reference's image gives every app (APP_PACKAGES)

APP_SITE = f"/opt/app/lib/python{STANDIN_PYTHON}/site-packages/"
PYPROJECT_ENV = {
    **PLATFORM_ENV,
    "FLASH_RESOURCE_NAME": "pyproject_worker",
    "FLASH_MODULE_PATH": "pyproject_worker",
}


def test_app_packages_are_the_reference_workers_dependencies() -> None:
    # The reference's worker (runpod-workers/flash, pyproject.toml) depends on these, installed in
    # the interpreter that runs the app; runpod-flash at the version the project pins elsewhere.
    cpu = app_packages()
    assert cpu == app_packages(ROOT / "images" / "gpu" / "Dockerfile")
    names = [package.split("=")[0].split(">")[0].split("[")[0] for package in cpu]
    assert names == [
        "runpod-flash",
        "aiohttp",
        "cloudpickle",
        "pydantic",
        "requests",
        "runpod",
        "hf_transfer",
        "huggingface_hub",
        "fastapi",
        "uvicorn",
    ]
    assert "uvicorn[standard]>=0.34.0" in cpu
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    assert "runpod-flash==1.21.0" in pins and "runpod-flash==1.21.0" in cpu


def test_pyproject_app_finds_the_reference_packages(
    pyproject_artifact: Path, cpu_image: str, run_container
) -> None:
    """An app whose requirements.txt is empty (its dependencies in pyproject.toml, which flash
    build does not read): its artifact has runpod_flash's source but not its dependencies, nor
    requests or huggingface_hub, which its routes import. Served the platform's way."""
    with tarfile.open(pyproject_artifact) as archive:
        tops = {name.removeprefix("./").split("/")[0] for name in archive.getnames()}
    assert "runpod_flash" in tops
    assert not tops & {"dotenv", "pydantic", "requests", "huggingface_hub", "fastapi", "runpod"}, (
        tops
    )

    container = run_container(
        cpu_image, env=PYPROJECT_ENV, port=80, volumes=(f"{pyproject_artifact}:{ARTIFACT}:ro",)
    )
    assert watch_ping(container) == [204, 200]
    response = httpx.get(container.url + "/modules", timeout=10)
    assert response.status_code == 200, response.text
    found = response.json()
    # The artifact's own copy of runpod_flash wins (the app's folder is first on sys.path); what
    # it lacks comes from the image's app environment.
    assert found["runpod_flash"] == "/app/runpod_flash/__init__.py"
    for name in ("dotenv", "pydantic", "requests", "huggingface_hub"):
        assert found[name].startswith(APP_SITE + name + "/"), (name, found[name])
    response = httpx.post(
        container.url + "/repo-url",
        json={"repo_id": "org/model", "filename": "config.json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "url": "https://huggingface.co/org/model/resolve/main/config.json",
        "prepared": "https://huggingface.co/org/model/resolve/main/config.json?download=true",
    }
    assert_worker_runs_as_flash_user(container)


def test_pyproject_app_fails_on_the_lean_image(
    pyproject_artifact: Path, cpu_image_lean: str, run_container
) -> None:
    # APP_PACKAGES="" opts out: the same artifact cannot import runpod_flash's dependencies there.
    container = run_container(
        cpu_image_lean, env=PYPROJECT_ENV, port=80, volumes=(f"{pyproject_artifact}:{ARTIFACT}:ro",)
    )
    assert container.exit_code(timeout=120) != 0
    errors = [r for r in container.logs() if r.get("event") == "startup error"]
    # runpod_flash's first import it cannot find (its endpoint module imports pydantic).
    assert errors and "No module named 'pydantic'" in errors[0]["error"], container.log_text()


def test_app_packages_in_the_images(
    podman: Podman, cpu_image: str, cpu_image_lean: str, gpu_image: str
) -> None:
    script = (
        "import importlib.util as u\n"
        "for name in ('runpod_flash', 'dotenv', 'runpod', 'fastapi', 'aiohttp', 'cloudpickle', 'requests',\n"
        "             'hf_transfer', 'huggingface_hub', 'uvicorn', 'uvloop', 'torch', 'numpy'):\n"
        "    spec = u.find_spec(name)\n"
        "    print(name, spec.origin if spec else None)\n"
    )
    for image in (cpu_image, gpu_image):
        origins = dict(
            line.split()
            for line in podman.output(image, "/opt/app/bin/python", "-c", script).splitlines()
        )
        for name in (
            "runpod_flash",
            "dotenv",
            "runpod",
            "fastapi",
            "aiohttp",
            "cloudpickle",
            "requests",
            "hf_transfer",
            "huggingface_hub",
            "uvicorn",
            "uvloop",
        ):
            assert origins[name].startswith(APP_SITE), (image, name, origins[name])
        if image == gpu_image:  # torch and numpy stay the base's
            base_site = f"/usr/local/lib/python{STANDIN_PYTHON}/dist-packages/"
            assert origins["torch"].startswith(base_site) and origins["numpy"].startswith(
                base_site
            ), origins
        versions = podman.output(
            image,
            "/opt/app/bin/python",
            "-c",
            "from importlib.metadata import version; print(version('runpod-flash'))",
        )
        assert versions.strip() == "1.21.0"
    # pip resolved them together: no broken requirement among the app's packages (on the CPU image,
    # whose app environment sees no other site-packages).
    check = podman.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--no-healthcheck",
        "--entrypoint",
        "/opt/app/bin/pip",
        cpu_image,
        "check",
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    lean = podman.output(cpu_image_lean, "/opt/app/bin/python", "-c", script)
    assert "runpod_flash None" in lean and "requests None" in lean
    # The runtime's own environment is untouched by them.
    isolated = podman.output(
        cpu_image,
        RUNTIME_PYTHON,
        "-c",
        "import importlib.util as u; print(u.find_spec('runpod_flash'), u.find_spec('requests'))",
    )
    assert isolated.split() == ["None", "None"]


# The GPU image: torch and numpy from the base, for a flash-built GPU app


def test_gpu_image_config(podman: Podman, gpu_image: str) -> None:
    image = podman.inspect(gpu_image)
    config = image["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config.get("User", "") == ""
    assert config["Entrypoint"] == ENTRYPOINT
    assert image["Healthcheck"]["Test"] == [
        "CMD",
        RUNTIME_PYTHON,
        "-I",
        "/opt/flash/healthcheck.py",
    ]
    assert env["FLASH_APP_VENV"] == "/opt/app" and env["PATH"].split(":")[0] == "/opt/app/bin"
    # The runtime's environment stays isolated from the base's packages; the app's sees them.
    isolated = podman.output(
        gpu_image,
        RUNTIME_PYTHON,
        "-c",
        "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('numpy'))",
    )
    assert isolated.split() == ["None", "None"]
    app_sees = podman.output(
        gpu_image,
        "/opt/app/bin/python",
        "-c",
        "import torch, numpy; print(torch.__version__, torch.__file__)",
    )
    version, location = app_sees.split()
    assert version == "2.9.1+cu128"
    assert location == f"/usr/local/lib/python{STANDIN_PYTHON}/dist-packages/torch/__init__.py"
    pip = podman.output(gpu_image, "sh", "-c", "command -v pip")
    assert pip.strip() == "/opt/app/bin/pip"


def test_gpu_app_imports_torch_and_numpy_from_the_base(
    gpu_image: str, gpu_artifact: Path, run_container
) -> None:
    container = run_container(
        gpu_image,
        env={
            **PLATFORM_ENV,
            "FLASH_RESOURCE_NAME": "gpu_worker",
            "FLASH_MODULE_PATH": "gpu_worker",
        },
        port=80,
        volumes=(f"{gpu_artifact}:{ARTIFACT}:ro",),
    )
    assert watch_ping(container) == [204, 200]
    assert httpx.get(container.url + "/health", timeout=10).json() == {
        "status": "healthy",
        "service": "gpu",
    }
    response = httpx.post(container.url + "/stats", json={"numbers": [1, 2, 3, 4]}, timeout=10)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert (stats["mean"], stats["std"]) == (2.5, 1.118033988749895)
    assert stats["torch"] == "2.9.1+cu128" and stats["cuda"] is False
    base_site = f"/usr/local/lib/python{STANDIN_PYTHON}/dist-packages/"
    assert stats["torch_file"].startswith(base_site)
    assert stats["numpy_file"].startswith(base_site)
    assert_worker_runs_as_flash_user(container)


def test_image_sizes(
    podman: Podman, standin_base: str, cpu_image: str, cpu_image_lean: str, gpu_image: str
) -> None:
    """Measure the CPU image against its base, the runtime's share of it and the lean image
    (APP_PACKAGES empty), and the GPU image's app environment (printed in -rP)."""
    base = podman.inspect(standin_base)["Size"]
    image = podman.inspect(cpu_image)["Size"]
    lean = podman.inspect(cpu_image_lean)["Size"]
    paths = ["/opt/flash/venv", "/opt/flash", "/opt/app", "/usr/bin/tini"]
    kib = {path: int(podman.output(cpu_image, "du", "-sk", path).split()[0]) for path in paths}
    lean_app_kib = int(podman.output(cpu_image_lean, "du", "-sk", "/opt/app").split()[0])
    gpu_app_kib = int(podman.output(gpu_image, "du", "-sk", "/opt/app").split()[0])
    report = {
        "base_mb": base / 1e6,
        "image_mb": image / 1e6,
        "added_mb": (image - base) / 1e6,
        "lean_image_mb": lean / 1e6,
        "lean_added_mb": (lean - base) / 1e6,
        **{f"{path}_mb": size * 1024 / 1e6 for path, size in kib.items()},
        "lean_/opt/app_mb": lean_app_kib * 1024 / 1e6,
        "gpu_/opt/app_mb": gpu_app_kib * 1024 / 1e6,
    }
    print("image sizes:", json.dumps({key: round(value, 2) for key, value in report.items()}))
    assert base < lean < image
    assert kib["/opt/flash/venv"] < kib["/opt/flash"]
    assert kib["/opt/flash"] * 1024 < image - base
    assert lean_app_kib < kib["/opt/app"]
