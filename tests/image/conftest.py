"""Fixtures of the image test: the stand-in base, a local wheel index, the images it builds.

The base images cannot be pulled here, so a stand-in (Debian bookworm with its python3, made by
mmdebstrap) takes their place through the Dockerfiles' BASE_IMAGE argument. pip inside a build
cannot reach PyPI (no CA certificates in the image), so the wheels are built on the host and
served to the build from a local index through PIP_INDEX_URL. Everything podman stores lives
under the cache directory; what a run creates besides the images it tags is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomllib
from podman_support import (
    APPS,
    CACHE,
    ROOT,
    STANDIN_MMDEBSTRAP,
    STANDIN_PYTHON,
    Container,
    Podman,
    digest,
    free_port,
    port_is_free,
    project_name,
)


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    missing = [tool for tool in ("podman", "mmdebstrap", "runc", "slirp4netns") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run images/test/setup.sh (make test-image does)")
    engine = Podman(CACHE)
    yield engine
    # Rebuilt images leave their old layers untagged; the tagged ones are the next run's cache.
    engine.run("image", "prune", "--force", check=False, timeout=300)


@pytest.fixture(scope="session")
def standin_base(podman: Podman) -> str:
    """The stand-in base image, made once and kept in the cache."""
    key = digest(json.dumps(STANDIN_MMDEBSTRAP))
    tag = f"localhost/flash-standin-python:{STANDIN_PYTHON}-{key}"
    if podman.image_exists(tag):
        return tag
    tarball = CACHE / f"standin-{key}.tar"
    if not tarball.exists():
        partial = CACHE / f"standin-{key}.partial.tar"
        proc = subprocess.run(["mmdebstrap", "--quiet", *STANDIN_MMDEBSTRAP, str(partial)],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"mmdebstrap failed:\n{proc.stderr[-4000:]}"
        partial.rename(tarball)
    podman.run("import", str(tarball), tag, timeout=300)
    return tag


# The index's URL is a build argument, so it is part of the build cache's key: a fixed port keeps
# warm builds cached (any free port when that one is taken).
INDEX_PORT = 38765


def pip_for_standin(command: str) -> list[str]:
    """`pip <command>` choosing binary wheels for the stand-in's Python, whatever the host runs."""
    platforms = ["manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 37))]
    return [sys.executable, "-m", "pip", command, "--quiet", "--quiet", "--only-binary=:all:", "--implementation", "cp",
            "--python-version", STANDIN_PYTHON, *(arg for p in platforms for arg in ("--platform", p))]


@pytest.fixture(scope="session")
def pip_index() -> Iterator[str]:
    """A PEP 503 index on 127.0.0.1 serving wheels built on the host: the runtime's dependencies,
    its build backend and the test app's requirements (the image builds the runtime from source)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime_wants = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    requirements = APPS / "pinned-starlette" / "requirements.txt"
    wheels = CACHE / "wheels"
    stamp = wheels / f".built-{digest(json.dumps(runtime_wants), requirements.read_bytes())}"
    if not stamp.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        # Two resolutions: the app's pins conflict with the runtime's requirements on purpose.
        for wanted in (runtime_wants, ["-r", str(requirements)]):
            subprocess.run([*pip_for_standin("download"), "--dest", str(wheels), *wanted], check=True, timeout=600)
        stamp.touch()
    with tempfile.TemporaryDirectory(prefix="flash-index-") as tmp:
        simple = Path(tmp) / "simple"
        for wheel in wheels.glob("*.whl"):
            folder = simple / project_name(wheel)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / wheel.name).symlink_to(wheel)
        port = INDEX_PORT if port_is_free(INDEX_PORT) else free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                   "--directory", tmp, str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/simple/"
            deadline = time.monotonic() + 10
            while True:
                try:
                    httpx.get(url, timeout=1.0)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "the wheel index did not start"
                    time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def build_args(standin_base: str, pip_index: str) -> dict[str, str]:
    return {"PYTHON_VERSION": STANDIN_PYTHON, "BASE_IMAGE": standin_base, "PIP_INDEX_URL": pip_index}


@pytest.fixture(scope="session")
def cpu_image(podman: Podman, standin_base: str, pip_index: str) -> str:
    tag = f"localhost/flash-worker-cpu:py{STANDIN_PYTHON}-standin"
    podman.build(ROOT / "images" / "cpu" / "Dockerfile", ROOT, tag,
                 build_args=build_args(standin_base, pip_index), keep_stage="runtime")
    return tag


@pytest.fixture(scope="session")
def gpu_image(podman: Podman, standin_base: str, pip_index: str) -> str:
    tag = f"localhost/flash-worker-gpu:py{STANDIN_PYTHON}-standin"
    podman.build(ROOT / "images" / "gpu" / "Dockerfile", ROOT, tag,
                 build_args=build_args(standin_base, pip_index), keep_stage="runtime")
    return tag


@pytest.fixture(scope="session")
def runpod_flash_bundle() -> Path:
    """runpod-flash and its dependencies installed into a plain folder, as `flash build` bundles
    them next to an app's modules (the example app imports `runpod_flash`)."""
    from importlib.metadata import version

    spec = f"runpod-flash=={version('runpod-flash')}"
    bundle = CACHE / f"bundle-{digest(spec, STANDIN_PYTHON)}"
    if not bundle.exists():
        partial = bundle.with_name(bundle.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([*pip_for_standin("install"), "--no-compile", "--target", str(partial), spec],
                       check=True, timeout=900)
        partial.rename(bundle)
    return bundle


@pytest.fixture(scope="session")
def example_image(podman: Podman, cpu_image: str, runpod_flash_bundle: Path) -> str:
    """images/example/Dockerfile (FROM ours, COPY . /app) on manifests/example plus the bundle."""
    tag = "localhost/flash-example:standin"
    with tempfile.TemporaryDirectory(prefix="flash-example-", dir=CACHE) as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(runpod_flash_bundle, context, copy_function=os.link)
        shutil.copytree(ROOT / "manifests" / "example", context, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".flash"))
        podman.build(ROOT / "images" / "example" / "Dockerfile", context, tag, from_image=cpu_image)
    return tag


@pytest.fixture(scope="session")
def pinned_image(podman: Podman, cpu_image: str, pip_index: str) -> str:
    tag = "localhost/flash-pinned-starlette:standin"
    podman.build(APPS / "pinned-starlette" / "Dockerfile", APPS / "pinned-starlette", tag,
                 build_args={"PIP_INDEX_URL": pip_index}, from_image=cpu_image)
    return tag


@pytest.fixture
def run_container(podman: Podman) -> Iterator:
    """Start containers (`podman run -d`, published on a 127.0.0.1 port); all removed afterwards."""
    names: list[str] = []

    def start(image: str, env: dict[str, str] | None = None) -> Container:
        port = free_port()
        name = f"flash-image-test-{os.getpid()}-{len(names)}"
        args = ["run", "-d", "--name", name, "--network", "slirp4netns", "-p", f"127.0.0.1:{port}:8000"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        names.append(name)
        podman.run(*args, image)
        return Container(podman, name, f"http://127.0.0.1:{port}")

    yield start
    for name in names:
        podman.run("rm", "--force", "--time", "0", name, check=False)
