"""Start the real entrypoint as a subprocess on free loopback ports and talk to it over TCP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "entrypoint.py"
CORE_APP = Path(__file__).resolve().parent / "core_app"
EXAMPLE_APP = ROOT / "manifests" / "example"
_GAUGE = re.compile(r"^(flash_\w+) (\S+)$", re.MULTILINE)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_records(lines: list[str]) -> list[dict]:
    """The lines that are JSON objects, parsed (a log's other lines skipped)."""
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def base_env(module_path: Path | str) -> dict[str, str]:
    """The environment of a test worker: this process's, less any FLASH_/RUNPOD_ setting.

    Started as root, the runtime drops to FLASH_USER (uid 10001 by default) before it loads the
    app; this machine's Python lives under /root, which uid 10001 cannot read, so the tests run
    their workers with the development setting FLASH_USER=root unless a test says otherwise
    (tests/test_privileges.py runs the real drop with an interpreter that uid can read).
    """
    return {
        **clean_env(),
        "FLASH_MODULE_PATH": str(module_path),
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }


def clean_env() -> dict[str, str]:
    """This process's environment less any FLASH_/RUNPOD_ setting (FLASH_USER=root as root, see above)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASH_", "RUNPOD_"))}
    if os.geteuid() == 0:
        env["FLASH_USER"] = "root"
    return env


class Worker:
    """One runtime process: its ports, its output lines, and the means to stop it."""

    def __init__(
        self,
        module_path: Path | str,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        python: str = sys.executable,
        cwd: Path | None = None,
        user: int | None = None,
    ):
        self.env = {**base_env(module_path), "LOG_FORMAT": "json", **(env or {})}
        self.port = int(self.env["PORT"])
        self.health_port = int(self.env.get("PORT_HEALTH", self.port))
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()
        self.proc = subprocess.Popen(
            [python, str(ENTRYPOINT), *args],
            env=self.env,
            cwd=cwd,
            **_as_user(user),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lines_lock:
                self.lines.append(line.rstrip("\n"))

    def logs(self) -> list[dict]:
        """The JSON log lines printed so far (other lines skipped)."""
        with self._lines_lock:
            lines = list(self.lines)
        return json_records(lines)

    def wait_log(self, predicate, timeout: float = 10.0) -> dict:
        """The first JSON log line matching `predicate`, waiting for it to be printed and read."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.logs():
                if predicate(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no matching log line within {timeout}s:\n{self.output()[-4000:]}"
                )
            time.sleep(0.05)

    def output(self) -> str:
        with self._lines_lock:
            return "\n".join(self.lines)

    def wait_status(
        self, status: int, path: str = "/ping", timeout: float = 30.0
    ) -> httpx.Response:
        """Poll `path` on the health port until it answers `status`."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            try:
                response = httpx.get(self.health_url + path, timeout=2.0)
                if response.status_code == status:
                    return response
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.02)
        raise AssertionError(f"{path} never answered {status} (last: {last!r}):\n{self.output()}")

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        self.wait_status(200, timeout=timeout)
        return self

    def gauges(self) -> dict[str, float]:
        """The unlabelled gauges of `/metrics` (the worker must serve it: FLASH_METRICS=1 or a
        separate PORT_HEALTH), e.g. `flash_requests_in_flight`."""
        text = httpx.get(self.health_url + "/metrics", timeout=5).text
        return {name: float(value) for name, value in _GAUGE.findall(text)}

    def wait_gauges(self, timeout: float = 30.0, **expected: float) -> dict[str, float]:
        """Poll `/metrics` until every named gauge reads its value: `in_flight=2, pending=3` are
        `flash_requests_in_flight` and `flash_requests_pending`."""
        wanted = {f"flash_requests_{name}": float(value) for name, value in expected.items()}
        deadline = time.monotonic() + timeout
        while True:
            gauges = self.gauges()
            if all(gauges.get(name) == value for name, value in wanted.items()):
                return gauges
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"gauges never read {wanted} (last: {gauges}):\n{self.output()[-4000:]}"
                )
            time.sleep(0.02)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        """Stop the process by PID, forcefully if it does not exit on SIGTERM."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_check(
    module_path: Path | str,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    python: str = sys.executable,
    cwd: Path | None = None,
    user: int | None = None,
) -> subprocess.CompletedProcess:
    """Run the entrypoint to completion (startup errors, --check) and capture its output."""
    full_env = {**base_env(module_path), **(env or {})}
    args = full_env.pop("_ARGS", "").split()
    return subprocess.run(
        [python, str(ENTRYPOINT), *args],
        env=full_env,
        cwd=cwd,
        **_as_user(user),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _as_user(uid: int | None) -> dict:
    """Popen arguments that start the child as `uid` (its group the same number, no others)."""
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def write_app(folder: Path, manifest: dict | str | None, files: dict[str, str]) -> Path:
    """An application folder with the given manifest (a dict, raw text, or none) and modules."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if manifest is not None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        (folder / "flash_manifest.json").write_text(text)
    return folder


def lb_manifest(*functions: tuple[str, str, str, str], name: str = "api", **extra) -> dict:
    """A manifest in Flash's format with one load-balanced resource: (module, function, method, path)."""
    return {
        "version": "1.0",
        "resources": {
            name: {
                "is_load_balanced": True,
                "functions": [
                    {"name": fn, "module": mod, "http_method": method, "http_path": path}
                    for mod, fn, method, path in functions
                ],
                **extra,
            }
        },
    }


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length body from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the headers: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the end of the body")
        body += chunk
    return status, headers, body


# Handlers that do not return until the test says so (it creates the file HOLD_RELEASE names), so a
# test knows a request is still in its handler without guessing how long a sleep lasts. Each one
# leaves a mark when it begins (and the async one when the runtime cancels it): an empty file in
# the folder `<HOLD_RELEASE>.marks`, which `marks` counts. Files, not log lines: handler threads
# printing at once can interleave their lines on stdout.
HOLD_APP = """
import asyncio
import os
import threading
import time
import uuid

RELEASE = os.environ["HOLD_RELEASE"]
MARKS = RELEASE + ".marks"
os.makedirs(MARKS, exist_ok=True)


def _mark(what, route):
    name = what + route.replace("/", "_") + "." + uuid.uuid4().hex
    open(os.path.join(MARKS, name), "x").close()


def hang() -> dict:
    _mark("started", "/hang")
    while not os.path.exists(RELEASE):
        time.sleep(0.02)
    return {"done": True, "thread": threading.current_thread().name}


async def hold() -> dict:
    _mark("started", "/hold")
    try:
        while not os.path.exists(RELEASE):
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        _mark("cancelled", "/hold")
        raise
    return {"held": True}


def quick() -> dict:
    return {"quick": True}


async def quick_async() -> dict:
    return {"quick": "async"}
"""


def hold_app(folder: Path) -> Path:
    """An app serving HOLD_APP: POST /hang (def), /hold (async), /quick (def), /quick-async."""
    return write_app(
        folder,
        lb_manifest(
            ("hold", "hang", "POST", "/hang"),
            ("hold", "hold", "POST", "/hold"),
            ("hold", "quick", "POST", "/quick"),
            ("hold", "quick_async", "POST", "/quick-async"),
        ),
        {"hold.py": HOLD_APP},
    )


def marks(release: Path, route: str, what: str = "started") -> int:
    """How many HOLD_APP handlers of `route` have `started` (or been `cancelled`) so far."""
    folder = Path(f"{release}.marks")
    prefix = what + route.replace("/", "_") + "."
    return (
        sum(1 for path in folder.iterdir() if path.name.startswith(prefix))
        if folder.is_dir()
        else 0
    )


def wait_marks(
    release: Path, route: str, count: int = 1, what: str = "started", timeout: float = 30.0
) -> None:
    """Wait until `count` HOLD_APP handlers of `route` have `started` (or been `cancelled`)."""
    deadline = time.monotonic() + timeout
    while marks(release, route, what) < count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{marks(release, route, what)} of {count} {route} handlers {what} within {timeout}s"
            )
        time.sleep(0.02)


def post_in_background(
    url: str, json: dict | None = None, timeout: float = 60
) -> tuple[threading.Thread, list]:
    """POST from a thread; its response (or the httpx error) lands in the returned list."""
    results: list = []

    def run() -> None:
        try:
            results.append(httpx.post(url, json=json if json is not None else {}, timeout=timeout))
        except httpx.HTTPError as exc:  # recorded, so the test can fail on it
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results
