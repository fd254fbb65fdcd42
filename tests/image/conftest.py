"""Fixtures of the image test: the stand-in base, a local wheel index, the images it builds.

The base images cannot be pulled here, so stand-ins (Debian bookworm with its python3, made by
mmdebstrap, with python:slim's layout and ENV for the CPU image and a stand-in torch for the GPU
image) take their place through the Dockerfiles' BASE_IMAGE argument. The apps are real
`flash build` outputs of tests/image/apps, cached by their sources' hash. pip inside a build
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
import tarfile
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
    IMAGE_SOURCE,
    ROOT,
    SLIM_PATH,
    STANDIN,
    STANDIN_MMDEBSTRAP,
    STANDIN_PYTHON,
    Container,
    Podman,
    app_packages,
    digest,
    free_port,
    port_is_free,
    project_name,
    revision,
)


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    missing = [
        tool
        for tool in ("podman", "mmdebstrap", "runc", "slirp4netns")
        if shutil.which(tool) is None
    ]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: run images/test/setup.sh (make test-image does)"
        )
    engine = Podman(CACHE)
    yield engine
    # Rebuilt images leave their old layers untagged; the tagged ones are the next run's cache.
    engine.run("image", "prune", "--force", check=False, timeout=300)


@pytest.fixture(scope="session")
def standin_rootfs(podman: Podman) -> str:
    """The stand-in's root filesystem as an image with no configuration, made once and cached."""
    key = digest(json.dumps(STANDIN_MMDEBSTRAP))
    tag = f"localhost/flash-standin-rootfs:{STANDIN_PYTHON}-{key}"
    if podman.image_exists(tag):
        return tag
    tarball = CACHE / f"standin-{key}.tar"
    if not tarball.exists():
        partial = CACHE / f"standin-{key}.partial.tar"
        proc = subprocess.run(
            ["mmdebstrap", "--quiet", *STANDIN_MMDEBSTRAP, str(partial)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, f"mmdebstrap failed:\n{proc.stderr[-4000:]}"
        partial.rename(tarball)
    podman.run("import", str(tarball), tag, timeout=300)
    return tag


@pytest.fixture(scope="session")
def standin_base(podman: Podman, standin_rootfs: str) -> str:
    """The CPU image's stand-in base: the root filesystem plus the ENV python:*-slim sets, its
    PYTHON_VERSION (the full version) included, so that a build argument of that name would be
    overridden here as it is on the real base."""
    tag = standin_rootfs.replace("flash-standin-rootfs", "flash-standin-python")
    if podman.image_exists(tag):
        return tag
    version = podman.output(
        standin_rootfs, "python3", "-c", "import platform; print(platform.python_version())"
    )
    changes = [
        f"ENV PYTHON_VERSION={version.strip()}",
        "ENV LANG=C.UTF-8",
        f"ENV PATH={SLIM_PATH}",
        'CMD ["python3"]',
    ]
    container = f"flash-standin-{os.getpid()}"
    podman.run("create", "--name", container, standin_rootfs, "true")
    try:
        podman.run(
            "commit",
            "--format",
            "docker",
            *(arg for c in changes for arg in ("--change", c)),
            container,
            tag,
            timeout=300,
        )
    finally:
        podman.run("rm", "--force", container, check=False)
    return tag


@pytest.fixture(scope="session")
def gpu_standin_base(podman: Podman, standin_rootfs: str) -> str:
    """The GPU image's stand-in base (tests/image/standin/gpu): torch where runpod/pytorch has it."""
    tag = standin_rootfs.replace("flash-standin-rootfs", "flash-standin-pytorch")
    podman.build(
        STANDIN / "gpu" / "Dockerfile",
        STANDIN / "gpu",
        tag,
        build_args={"BASE_IMAGE": standin_rootfs, "PYTHON": STANDIN_PYTHON},
    )
    return tag


# The index's URL is a build argument, so it is part of the build cache's key: a fixed port keeps
# warm builds cached (any free port when that one is taken).
INDEX_PORT = 38765


def pip_for_standin(command: str) -> list[str]:
    """`pip <command>` choosing binary wheels for the stand-in's Python, whatever the host runs."""
    platforms = [
        "manylinux2014_x86_64",
        *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 37)),
    ]
    return [
        sys.executable,
        "-m",
        "pip",
        command,
        "--quiet",
        "--quiet",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        STANDIN_PYTHON,
        *(arg for p in platforms for arg in ("--platform", p)),
    ]


@pytest.fixture(scope="session")
def pip_index() -> Iterator[str]:
    """A PEP 503 index on 127.0.0.1 serving wheels built on the host: the runtime's dependencies,
    its build backend, the packages the images give apps (APP_PACKAGES) and the test app's
    requirements (the image builds the runtime from source). Downloaded again only when one of
    those lists changes."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # The runtime with its uvicorn extra and build backend; numpy and pip for the GPU image.
    runtime_wants = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["uvicorn"],
        *project["build-system"]["requires"],
        "numpy",
        "pip",
    ]
    app_wants = app_packages()
    requirements = APPS / "pinned-starlette" / "requirements.txt"
    wheels = CACHE / "wheels"
    stamp = (
        wheels
        / f".built-{digest(json.dumps([runtime_wants, app_wants]), requirements.read_bytes())}"
    )
    if not stamp.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        # Three resolutions, as the image has three environments: the runtime's, the app's with
        # APP_PACKAGES, and the pinned app's, whose pins conflict with the runtime's on purpose.
        for wanted in (runtime_wants, app_wants, ["-r", str(requirements)]):
            subprocess.run(
                [*pip_for_standin("download"), "--dest", str(wheels), *wanted],
                check=True,
                timeout=600,
            )
        stamp.touch()
    with tempfile.TemporaryDirectory(prefix="flash-index-") as tmp:
        simple = Path(tmp) / "simple"
        for wheel in wheels.glob("*.whl"):
            folder = simple / project_name(wheel)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / wheel.name).symlink_to(wheel)
        port = INDEX_PORT if port_is_free(INDEX_PORT) else free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                tmp,
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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


def build_args(base: str, pip_index: str) -> dict[str, str]:
    """What images/images.mk passes, with the stand-in base and the local index."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return {
        "PYTHON": STANDIN_PYTHON,
        "BASE_IMAGE": base,
        "PIP_INDEX_URL": pip_index,
        "VERSION": version,
        "REVISION": revision(),
        "SOURCE": IMAGE_SOURCE,
    }


@pytest.fixture(scope="session")
def cpu_image(podman: Podman, standin_base: str, pip_index: str) -> str:
    tag = f"localhost/flash-lb-cpu:py{STANDIN_PYTHON}-standin"
    podman.build(
        ROOT / "images" / "cpu" / "Dockerfile",
        ROOT,
        tag,
        build_args=build_args(standin_base, pip_index),
        keep_stage="runtime",
    )
    return tag


@pytest.fixture(scope="session")
def cpu_image_lean(podman: Podman, standin_base: str, pip_index: str, cpu_image: str) -> str:
    """The CPU image with APP_PACKAGES empty: no packages for the app but its artifact's. Built
    after cpu_image, whose layers up to the app's environment it shares."""
    tag = f"localhost/flash-lb-cpu:py{STANDIN_PYTHON}-standin-lean"
    podman.build(
        ROOT / "images" / "cpu" / "Dockerfile",
        ROOT,
        tag,
        build_args={**build_args(standin_base, pip_index), "APP_PACKAGES": ""},
    )
    return tag


@pytest.fixture(scope="session")
def gpu_image(podman: Podman, gpu_standin_base: str, pip_index: str) -> str:
    tag = f"localhost/flash-lb:py{STANDIN_PYTHON}-standin"
    podman.build(
        ROOT / "images" / "gpu" / "Dockerfile",
        ROOT,
        tag,
        build_args=build_args(gpu_standin_base, pip_index),
        keep_stage="runtime",
    )
    return tag


def flash_build(app: str) -> Path:
    """`flash build` of tests/image/apps/<app> (the dev venv's flash, wheels for the stand-in's
    Python), cached by the sources' hash; returns the artifact."""
    from importlib.metadata import version

    sources = sorted(p for p in (APPS / app).iterdir() if p.is_file())
    key = digest(
        version("runpod-flash"), STANDIN_PYTHON, *(p.name + "\0" + p.read_text() for p in sources)
    )
    artifact = CACHE / f"artifact-{app}-{key}.tar.gz"
    if artifact.exists():
        return artifact
    with tempfile.TemporaryDirectory(prefix="flash-build-", dir=CACHE) as scratch:
        project = Path(scratch) / app  # flash names the project after its folder
        project.mkdir()
        for path in sources:
            shutil.copy2(path, project / path.name)
        proc = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "flash"), "build", "--python-version", STANDIN_PYTHON],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, (
            f"flash build {app} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
        shutil.copy2(project / ".flash" / "artifact.tar.gz", artifact.with_suffix(".partial"))
        artifact.with_suffix(".partial").rename(artifact)
    for stale in CACHE.glob(f"artifact-{app}-*.tar.gz"):  # earlier sources' builds
        if stale != artifact:
            stale.unlink()
    return artifact


@pytest.fixture(scope="session")
def lb_artifact() -> Path:
    return flash_build("lb_app")


@pytest.fixture(scope="session")
def gpu_artifact() -> Path:
    return flash_build("gpu_app")


@pytest.fixture(scope="session")
def pyproject_artifact() -> Path:
    """tests/image/apps/pyproject_app: an empty requirements.txt, so the artifact carries the
    runpod_flash source and none of its dependencies."""
    return flash_build("pyproject_app")


def build_example(
    podman: Podman, base: str, artifact: Path, tag: str, build_args: dict[str, str]
) -> str:
    """images/example/Dockerfile on a `flash build` output (the artifact's content), with the
    files a developer's folder holds besides it, which images/example/.dockerignore keeps out."""
    with tempfile.TemporaryDirectory(prefix="flash-example-", dir=CACHE) as tmp:
        context = Path(tmp) / "context"
        with tarfile.open(artifact) as archive:
            archive.extractall(context, filter="data")
        shutil.copy2(ROOT / "images" / "example" / ".dockerignore", context / ".dockerignore")
        (context / ".env").write_text("RUNPOD_API_KEY=not-for-the-image\n")
        (context / ".venv" / "bin").mkdir(parents=True)
        (context / ".flash").mkdir()
        (context / ".flash" / "artifact.tar.gz").write_bytes(b"not for the image")
        podman.build(
            ROOT / "images" / "example" / "Dockerfile",
            context,
            tag,
            from_image=base,
            build_args=build_args,
        )
    return tag


@pytest.fixture(scope="session")
def example_image(podman: Podman, cpu_image: str, lb_artifact: Path, pip_index: str) -> str:
    """images/example/Dockerfile (FROM ours, requirements, COPY . /app, bytecode) on lb_app's build."""
    return build_example(
        podman,
        cpu_image,
        lb_artifact,
        "localhost/flash-example:standin",
        {"PIP_INDEX_URL": pip_index},
    )


@pytest.fixture(scope="session")
def example_image_uncompiled(
    podman: Podman, cpu_image: str, lb_artifact: Path, pip_index: str
) -> str:
    """The same with COMPILE_BYTECODE=0: the app compiles its modules at every boot."""
    return build_example(
        podman,
        cpu_image,
        lb_artifact,
        "localhost/flash-example:standin-uncompiled",
        {"PIP_INDEX_URL": pip_index, "COMPILE_BYTECODE": "0"},
    )


@pytest.fixture(scope="session")
def pinned_image(podman: Podman, cpu_image: str, pip_index: str) -> str:
    tag = "localhost/flash-pinned-starlette:standin"
    podman.build(
        APPS / "pinned-starlette" / "Dockerfile",
        APPS / "pinned-starlette",
        tag,
        build_args={"PIP_INDEX_URL": pip_index},
        from_image=cpu_image,
    )
    return tag


@pytest.fixture
def run_container(podman: Podman) -> Iterator:
    """Start containers (`podman run -d`, `port` published on a 127.0.0.1 port, `volumes` as
    `host:container[:options]`, no command); all removed afterwards."""
    names: list[str] = []

    def start(
        image: str,
        env: dict[str, str] | None = None,
        *,
        port: int = 8000,
        volumes: tuple[str, ...] = (),
    ) -> Container:
        host_port = free_port()
        name = f"flash-image-test-{os.getpid()}-{len(names)}"
        args = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "slirp4netns",
            "-p",
            f"127.0.0.1:{host_port}:{port}",
        ]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for volume in volumes:
            args += ["--volume", volume]
        names.append(name)
        podman.run(*args, image)
        return Container(podman, name, f"http://127.0.0.1:{host_port}")

    yield start
    for name in names:
        podman.run("rm", "--force", "--time", "0", name, check=False)
