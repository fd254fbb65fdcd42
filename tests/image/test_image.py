"""The CPU and GPU images, built from the real Dockerfiles on a stand-in base, and downstream images
run with podman: serving, the process tree, graceful shutdown, the app's own requirements.

Run by `make test-image` (it installs the tools first); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import pytest
from podman_support import APPS, STANDIN_PYTHON, Podman

pytestmark = pytest.mark.skipif(os.environ.get("FLASH_IMAGE_TEST") != "1",
                                reason="image test: run `make test-image`")

RUNTIME_PYTHON = "/opt/flash/venv/bin/python"


def test_cpu_image_config(podman: Podman, cpu_image: str) -> None:
    image = podman.inspect(cpu_image)
    config = image["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/app"
    assert "8000/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"] == ["/usr/bin/tini", "--", RUNTIME_PYTHON, "/opt/flash/entrypoint.py"]
    assert image["Healthcheck"]["Test"] == ["CMD", RUNTIME_PYTHON, "-I", "/opt/flash/healthcheck.py"]
    assert env["FLASH_MODULE_PATH"] == "/app"
    assert env["FLASH_APP_VENV"] == "/opt/app"
    assert env["PATH"].split(":")[0] == "/opt/app/bin"


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
    assert podman.output(cpu_image, RUNTIME_PYTHON, "-c", script).split() == ["10001", "False", "True", "True"]


def test_example_image_serves_its_routes(podman: Podman, example_image: str, run_container) -> None:
    container = run_container(example_image)
    container.wait_status(200)
    assert container.wait_status(200).json() == {"status": "healthy"}
    response = httpx.post(container.url + "/sum", json={"numbers": [1, 2, 3.5]}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"sum": 6.5, "count": 3}
    item = httpx.get(container.url + "/items/7", timeout=10)
    assert item.json() == {"id": 7, "name": "item-7"}
    healthcheck = podman.run("healthcheck", "run", container.name, check=False)
    assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr


def test_runtime_runs_under_tini_as_non_root(example_image: str, run_container) -> None:
    container = run_container(example_image)
    container.wait_status(200)
    processes = container.processes()
    init = next(p for p in processes if p["pid"] == "1")
    assert init["args"].startswith("/usr/bin/tini -- ")
    workers = [p for p in processes if "/opt/flash/entrypoint.py" in p["args"] and p["pid"] != "1"]
    assert len(workers) == 1, processes
    assert workers[0]["ppid"] == "1"
    assert {p["user"] for p in processes} == {"flash"}, processes


def test_sigterm_drains_an_in_flight_request(pinned_image: str, run_container) -> None:
    container = run_container(pinned_image, env={"FLASH_GRACEFUL_TIMEOUT": "20"})
    container.wait_status(200)
    result: dict[str, object] = {}

    def slow_request() -> None:
        try:
            result["response"] = httpx.post(container.url + "/slow", json={"seconds": 3}, timeout=30)
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


def test_app_requirements_leave_the_runtime_alone(podman: Podman, pinned_image: str, run_container) -> None:
    # The pinned Starlette went to the app's environment; the runtime kept its own.
    app_starlette = podman.output(pinned_image, "/opt/app/bin/python", "-c",
                                  "import starlette; print(starlette.__version__)").strip()
    runtime_starlette = podman.output(pinned_image, RUNTIME_PYTHON, "-c",
                                      "import starlette; print(starlette.__version__)").strip()
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
    proc = podman.build(APPS / "broken" / "Dockerfile", APPS / "broken", "localhost/flash-broken:standin",
                        from_image=cpu_image, check=False)
    assert proc.returncode != 0
    assert "no_such_module" in proc.stdout + proc.stderr
    assert not podman.image_exists("localhost/flash-broken:standin")


def test_gpu_image_builds_on_a_stand_in_base(podman: Podman, gpu_image: str) -> None:
    config = podman.inspect(gpu_image)["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"][0] == "/usr/bin/tini"
    loaded = podman.output(gpu_image, RUNTIME_PYTHON, "-c", "import runtime.app, starlette, hypercorn; print('ok')")
    assert loaded.strip() == "ok"


def test_image_sizes(podman: Podman, standin_base: str, cpu_image: str) -> None:
    """Measure the CPU image against its base and the runtime's share of it (printed in -rP)."""
    base = podman.inspect(standin_base)["Size"]
    image = podman.inspect(cpu_image)["Size"]
    paths = ["/opt/flash/venv", "/opt/flash", "/opt/app", "/usr/bin/tini"]
    kib = {path: int(podman.output(cpu_image, "du", "-sk", path).split()[0]) for path in paths}
    report = {"base_mb": base / 1e6, "image_mb": image / 1e6, "added_mb": (image - base) / 1e6,
              **{f"{path}_mb": size * 1024 / 1e6 for path, size in kib.items()}}
    print("image sizes:", json.dumps({key: round(value, 2) for key, value in report.items()}))
    assert base < image
    assert kib["/opt/flash/venv"] < kib["/opt/flash"]
    assert kib["/opt/flash"] * 1024 < image - base
