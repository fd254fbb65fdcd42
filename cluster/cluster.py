"""Run N runtime workers on loopback ports behind HAProxy: start, restart, kill, stop by PID.

Used by `make cluster` (serves until Ctrl-C) and by tests/cluster. Each worker is the real
entrypoint.py on its own 127.0.0.1 port; HAProxy balances them with health checks on /ping.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "entrypoint.py"
TEMPLATE = Path(__file__).resolve().parent / "haproxy.cfg.tmpl"
EXAMPLE_APP = ROOT / "manifests" / "example"
FIXTURE_APP = ROOT.parent / "shared" / "fixtures" / "flash-demo"


def default_app() -> Path:
    """The example app once it has a manifest, else the flash-demo build output."""
    if (EXAMPLE_APP / "flash_manifest.json").is_file():
        return EXAMPLE_APP
    return FIXTURE_APP


def find_haproxy() -> str | None:
    """The haproxy binary: on PATH, or where Debian installs it (/usr/sbin is not on every PATH)."""
    found = shutil.which("haproxy")
    if found:
        return found
    for candidate in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Slot:
    """One server line in HAProxy's backend: a fixed port and the worker process behind it."""

    name: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    generation: int = 0
    log_path: Path | None = None
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Exit:
    """How one worker process ended."""

    slot: str
    generation: int
    signal: str
    returncode: int
    seconds: float


class Cluster:
    """N workers plus optional spare slots (declared in HAProxy, started later) behind HAProxy."""

    def __init__(
        self,
        app: Path | str | None = None,
        workers: int = 3,
        port: int | None = None,
        spare: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        entrypoint: Path | str | None = None,
        haproxy: str | None = None,
        workdir: Path | str | None = None,
        server_timeout: int = 360,
    ):
        self.app = Path(app).resolve() if app else default_app()
        self.port = port or free_port()
        self.env = dict(env or {})
        self.python = python
        self.entrypoint = Path(entrypoint or ENTRYPOINT)
        self.haproxy_bin = haproxy or find_haproxy() or "haproxy"
        self.server_timeout = server_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="flash-cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self._own_workdir:
            # Logs and sockets, never sources: keep a folder inside a checkout out of git.
            (self.workdir / ".gitignore").write_text("*\n")
        names = [f"w{i}" for i in range(1, workers + 1)] + list(spare)
        self.slots = {name: Slot(name, free_port()) for name in names}
        self.spare = set(spare)
        self.haproxy: subprocess.Popen | None = None
        self.exits: list[Exit] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def stats_socket(self) -> Path:
        return self.workdir / "haproxy.sock"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Cluster:
        """Start every non-spare worker and HAProxy; return once HAProxy sees them all UP."""
        try:
            for name in self.slots:
                if name not in self.spare:
                    self.start_worker(name)
            self.config_path.write_text(self.render())
            self._start_haproxy()
            # HAProxy counts a server as UP until its first check fails: wait for the spare
            # slots' first failed check, so that nothing is sent to them before they are ready.
            for name in self.slots:
                self.wait_status(name, "DOWN" if name in self.spare else "UP", timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def render(self) -> str:
        """haproxy.cfg for the current slots."""
        servers = "\n".join(f"    server {s.name} 127.0.0.1:{s.port}" for s in self.slots.values())
        return Template(TEMPLATE.read_text()).substitute(
            stats_socket=self.stats_socket,
            server_timeout=self.server_timeout,
            bind_host="127.0.0.1",
            bind_port=self.port,
            servers=servers,
        )

    def _start_haproxy(self) -> None:
        check = subprocess.run(
            [self.haproxy_bin, "-c", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(
                f"haproxy rejected {self.config_path}:\n{check.stdout}{check.stderr}"
            )
        # -db: stay in the foreground so the PID we hold is the one serving.
        with open(self.workdir / "haproxy.log", "ab") as log:
            self.haproxy = subprocess.Popen(
                [self.haproxy_bin, "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.haproxy.poll() is not None:
                raise RuntimeError(
                    f"haproxy exited with {self.haproxy.returncode}:\n"
                    f"{(self.workdir / 'haproxy.log').read_text()}"
                )
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy's stats socket never answered")

    def start_worker(self, name: str, env: dict[str, str] | None = None) -> Slot:
        """Start a new worker process in slot `name` (on the slot's port)."""
        slot = self.slots[name]
        if slot.running():
            raise RuntimeError(f"{name} is already running (pid {slot.proc.pid})")
        if env is not None:
            slot.env = dict(env)
        slot.generation += 1
        slot.log_path = self.workdir / f"{name}.{slot.generation}.log"
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FLASH_", "RUNPOD_"))},
            # Started as root, the runtime drops to uid 10001, which cannot read a Python under /root.
            **({"FLASH_USER": "root"} if os.geteuid() == 0 else {}),
            "FLASH_MODULE_PATH": str(self.app),
            "HOST": "127.0.0.1",
            "PORT": str(slot.port),
            "LOG_FORMAT": "json",
            **self.env,
            **slot.env,
        }
        # A session of its own: a terminal's Ctrl-C reaches only the driver, which then stops
        # HAProxy and the workers in order instead of all of them at once.
        with open(slot.log_path, "ab") as log:
            slot.proc = subprocess.Popen(
                [self.python, str(self.entrypoint)],
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(self.app),
                start_new_session=True,
            )
        slot.started_at = time.monotonic()
        return slot

    def terminate(self, name: str, timeout: float = 60.0) -> Exit:
        """SIGTERM the worker in `name` and wait for it to drain and exit."""
        return self._end(name, signal.SIGTERM, timeout)

    def kill(self, name: str) -> Exit:
        """SIGKILL the worker in `name`: a crash, with no draining."""
        return self._end(name, signal.SIGKILL, 10.0)

    def _end(self, name: str, signum: signal.Signals, timeout: float) -> Exit:
        slot = self.slots[name]
        if slot.proc is None:
            raise RuntimeError(f"{name} has no process")
        started = time.monotonic()
        if slot.proc.poll() is None:
            slot.proc.send_signal(signum)
        try:
            code = slot.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            slot.proc.kill()
            slot.proc.wait(timeout=5)
            raise RuntimeError(
                f"{name} did not exit within {timeout}s of {signum.name}; killed"
            ) from None
        end = Exit(name, slot.generation, signum.name, code, time.monotonic() - started)
        self.exits.append(end)
        return end

    def restart(self, name: str, timeout: float = 60.0) -> Exit:
        """Replace one worker: SIGTERM it, wait for exit, start a new one, wait until it is UP."""
        end = self.terminate(name, timeout=timeout)
        # The new worker reuses the port: wait until HAProxy has seen the old one go, so that
        # the UP awaited below is the new worker's.
        self.wait_status(name, "DOWN", timeout=timeout)
        self.start_worker(name)
        self.wait_status(name, "UP", timeout=timeout)
        return end

    def rolling_restart(self, timeout: float = 60.0) -> list[Exit]:
        """Restart every running worker in turn, one at a time."""
        return [self.restart(name, timeout) for name, slot in self.slots.items() if slot.running()]

    def stop(self) -> None:
        """Stop HAProxy, then every worker, by PID (SIGTERM, then SIGKILL if one hangs)."""
        if self.haproxy is not None:
            if self.haproxy.poll() is None:
                self.haproxy.send_signal(signal.SIGTERM)
            _wait_or_kill(self.haproxy, 10.0)
        for slot in self.slots.values():
            if slot.running():
                slot.proc.send_signal(signal.SIGTERM)
        for slot in self.slots.values():
            if slot.proc is not None:
                _wait_or_kill(slot.proc, 40.0)

    def cleanup(self) -> None:
        """Remove the work directory (logs, config) if this cluster made it."""
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what HAProxy sees -----------------------------------------------------------------

    def admin(self, command: str) -> str:
        """One command on HAProxy's runtime API (the stats socket)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` rows of the backend's servers, by server name."""
        text = self.admin("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "workers" and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def status(self, name: str) -> str:
        """HAProxy's view of one server: UP, DOWN, MAINT, ... (without the transition suffix).

        A server counts as UP only once a health check has passed: HAProxy starts every server
        as UP before its first check, which says nothing about the worker behind it.
        """
        row = self.stats()[name]
        status = row["status"].split()[0]
        if status == "UP" and row["check_status"] != "L7OK":
            return "UNCHECKED"
        return status

    def wait_status(self, name: str, status: str, timeout: float = 60.0) -> float:
        """Wait until HAProxy reports `status` for `name`; return the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        last = None
        while time.monotonic() < deadline:
            slot = self.slots[name]
            if status == "UP" and slot.proc is not None and slot.proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {slot.proc.returncode}:\n{self.log_text(name)[-4000:]}"
                )
            last = self.status(name)
            if last == status:
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(
            f"{name} never became {status} in HAProxy (last: {last}):\n"
            f"{self.log_text(name)[-4000:]}"
        )

    # -- worker logs -----------------------------------------------------------------------

    def log_text(self, name: str, generation: int | None = None) -> str:
        slot = self.slots[name]
        path = self.workdir / f"{name}.{generation or slot.generation}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_records(self, name: str, generation: int | None = None) -> list[dict]:
        """The JSON log lines of one worker process (other lines skipped)."""
        records = []
        for line in self.log_text(name, generation).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def haproxy_log(self) -> str:
        path = self.workdir / "haproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def retried_requests(self) -> int:
        """Requests HAProxy sent more than once (the retries field of its httplog lines)."""
        return sum(1 for match in _RETRIES.finditer(self.haproxy_log()) if int(match[1]) > 0)


# httplog: ... <termination state> actconn/feconn/beconn/srv_conn/retries (a "+" marks a redispatch)
_RETRIES = re.compile(r" [-A-Za-z]{4} \d+/\d+/\d+/\d+/\+?(\d+) ")


def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--port", type=int, default=8080, help="HAProxy's port on 127.0.0.1")
    parser.add_argument(
        "--app",
        type=Path,
        default=None,
        help="FLASH_MODULE_PATH for the workers (default: manifests/example)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every worker (repeatable)",
    )
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)

    cluster = Cluster(
        args.app, workers=args.workers, port=args.port, env=env, workdir=ROOT / ".cluster"
    )
    # Ctrl-C and SIGTERM both end the loop below; the workers get SIGTERM from stop().
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        cluster.start()
        print(f"HAProxy on {cluster.url} -> {args.workers} workers serving {cluster.app}")
        for slot in cluster.slots.values():
            print(f"  {slot.name}: {slot.url} pid {slot.proc.pid} log {slot.log_path}")
        print(f"config {cluster.config_path}; HAProxy log {cluster.workdir / 'haproxy.log'}")
        print("Ctrl-C stops everything.")
        while True:
            time.sleep(1)
            for slot in cluster.slots.values():
                if slot.proc is not None and slot.proc.poll() is not None:
                    if time.monotonic() - slot.started_at < 10:
                        print(
                            f"{slot.name} exited with {slot.proc.returncode} right after "
                            f"starting:\n{cluster.log_text(slot.name)[-2000:]}"
                        )
                        return 1
                    print(f"{slot.name} exited with {slot.proc.returncode}; starting a new one")
                    cluster.start_worker(slot.name)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
