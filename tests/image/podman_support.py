"""podman on private storage, the stand-in base's recipe, and the containers the image test runs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from support import free_port  # noqa: E402,F401  (re-exported for the fixtures)

APPS = Path(__file__).resolve().parent / "apps"
STANDIN = Path(__file__).resolve().parent / "standin"
# The org.opencontainers.image.source label the tests build with (images.mk: the git remote).
IMAGE_SOURCE = "https://example.invalid/flash-worker-runtime"
CACHE = Path(os.environ.get("FLASH_IMAGE_CACHE", "/var/tmp/flash-image-cache"))

# The stand-in base: Debian 12 (bookworm) with its Python 3.11, pip and passwd (useradd), laid out
# as python:*-slim is where the images rely on it: `python` and `python3` in /usr/local/bin. The
# image ENV of python:slim (PYTHON_VERSION, LANG, PATH) is added when the tarball is imported.
STANDIN_PYTHON = "3.11"
STANDIN_MMDEBSTRAP = [
    "--variant=minbase",
    "--include=python3,python3-venv,python3-pip,passwd",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    '--customize-hook=ln -s /usr/bin/python3 "$1/usr/local/bin/python3"',
    '--customize-hook=ln -s /usr/bin/python3 "$1/usr/local/bin/python"',
    "bookworm",
]
SLIM_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"

# podman on this machine: crun cannot handle the hybrid cgroup layout, runc can.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""


def app_packages(dockerfile: Path | None = None) -> list[str]:
    """The default of the Dockerfile's APP_PACKAGES argument (the CPU image's unless told): what
    the image installs into the app's environment, one requirement a word."""
    text = (dockerfile or ROOT / "images" / "cpu" / "Dockerfile").read_text()
    found = re.findall(r'^ARG APP_PACKAGES="([^"]*)"$', text, flags=re.MULTILINE)
    assert len(found) == 1, f"{dockerfile}: one ARG APP_PACKAGES=\"...\" expected, found {found}"
    return found[0].split()


def port_is_free(port: int) -> bool:
    """Whether a server can listen on 127.0.0.1:`port` (a past run's TIME_WAIT sockets do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
    return sha.hexdigest()[:12]


def revision() -> str:
    """The commit the images are built from (images.mk passes `git rev-parse HEAD`)."""
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def project_name(wheel: Path) -> str:
    """A wheel's project name, normalised as a PEP 503 index names it."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()


class Podman:
    """The podman command line on private storage under the cache directory."""

    def __init__(self, cache: Path):
        cache.mkdir(parents=True, exist_ok=True)
        conf = cache / "containers.conf"
        if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
            conf.write_text(CONTAINERS_CONF)
        self.command = ["podman", "--root", str(cache / "storage"), "--runroot", str(cache / "run")]
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [*self.command, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
            )
        return proc

    def build(
        self,
        dockerfile: Path,
        context: Path,
        tag: str,
        *,
        build_args: dict[str, str] | None = None,
        from_image: str | None = None,
        keep_stage: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        """`podman build` without pulling; `from_image` replaces the first FROM. `keep_stage` is
        built and tagged first, so that pruning untagged images keeps its layers for the next run."""
        args = [
            "build",
            "--pull=never",
            "--isolation",
            "chroot",
            "--format",
            "docker",
            "--force-rm",
            "-f",
            str(dockerfile),
        ]
        for name, value in (build_args or {}).items():
            args += ["--build-arg", f"{name}={value}"]
        if from_image:
            args += ["--from", from_image]
        if keep_stage:
            self.run(
                *args,
                "--target",
                keep_stage,
                "-t",
                f"{tag}-stage-{keep_stage}",
                str(context),
                timeout=900,
            )
        return self.run(*args, "-t", tag, str(context), check=check, timeout=900)

    def image_exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0

    def inspect(self, image: str) -> dict:
        return json.loads(self.run("image", "inspect", image).stdout)[0]

    def output(self, image: str, *command: str, user: str | None = None) -> str:
        """Run `command` in a throwaway container of `image` (as `user`) and return its stdout."""
        entrypoint, *args = command
        as_user = ["--user", user] if user else []
        return self.run(
            "run",
            "--rm",
            "--network",
            "none",
            "--no-healthcheck",
            *as_user,
            "--entrypoint",
            entrypoint,
            image,
            *args,
        ).stdout


@dataclass
class Container:
    podman: Podman
    name: str
    url: str

    def running(self) -> bool:
        state = self.podman.run("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def wait_status(
        self, status: int, path: str = "/ping", timeout: float = 60.0
    ) -> httpx.Response:
        """Poll `path` from the host until it answers `status`."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(self.url + path, timeout=2.0)
                if response.status_code == status:
                    return response
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
                if not self.running():
                    break
            time.sleep(0.05)
        raise AssertionError(
            f"{path} never answered {status} (last: {last!r}); logs:\n{self.log_text()}"
        )

    def log_text(self) -> str:
        proc = self.podman.run("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def logs(self) -> list[dict]:
        """The JSON lines the container printed."""
        records = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def exit_code(self, timeout: float = 60.0) -> int:
        """Wait for the container to exit and return its exit code."""
        return int(self.podman.run("wait", self.name, timeout=timeout).stdout.strip())

    def exec(self, *command: str) -> str:
        """Run `command` inside the running container and return its stdout."""
        return self.podman.run("exec", self.name, *command).stdout

    def process_status(self, pid: str) -> dict[str, str]:
        """/proc/<pid>/status inside the container, as a dict of its fields."""
        fields = {}
        for line in self.exec("cat", f"/proc/{pid}/status").splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return fields

    def processes(self) -> list[dict[str, str]]:
        """The container's processes as `podman top` shows them (pid, ppid, user, args)."""
        lines = self.podman.run("top", self.name, "pid", "ppid", "user", "args").stdout.splitlines()
        rows = []
        for line in lines[1:]:
            pid, ppid, user, args = line.split(None, 3)
            rows.append({"pid": pid, "ppid": ppid, "user": user, "args": args})
        return rows
