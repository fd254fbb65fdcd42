"""`make bench`: the runtime against the reference it replaces, on the same apps, in one run.

Servers (each pinned to CPU 0 with taskset; wrk and this driver run on CPU 1):
  reference       runpod_flash's create_lb_handler FastAPI app on uvicorn, as worker-flash-lb runs it
  runtime         this project's entrypoint.py (Hypercorn)
  runtime-uvicorn the same with FLASH_SERVER=uvicorn
  raw-hypercorn   a do-nothing ASGI app on Hypercorn (the floor under `runtime`)
  raw-uvicorn     the same on uvicorn (the floor under `runtime-uvicorn`)

Phases: cold start (exec -> first /ping answer, -> first 200), realapp (cold starts of a real
`flash build` artifact: from the archive, from the unpacked tree, and the runtime's second boot with
a persistent cache), memory (idle RSS, RSS after 100k requests), load (wrk rounds alternating
between servers; medians), body (1 MB and 30 MB typed JSON bodies), busy (/ping while the thread
pool is full), routes (1/100/1000-route manifests: boot, throughput on the last route). Results go
to bench/results/{results.md,results.json,chart.png}; with --merge, the sections of the phases not
run are kept from the results.json already there (each section names its own date).

    .venv/bin/python bench/run.py [--quick] [--servers a,b] [--phases cold,realapp,load,body,busy,routes] [--merge]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "apps"))

import build_real_artifact  # noqa: E402
import gen_routes  # noqa: E402
import image_bytecode  # noqa: E402
import reference  # noqa: E402
import report  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
# The runtime and the raw floors run from an environment holding only the runtime (and uvicorn),
# as in the images; the dev environment also has runpod-flash's tree (rich, pydantic, ...), which
# structlog and others would import. `make bench` creates it; without it the dev one is used.
RUNTIME_VENV = ROOT / ".venv-runtime"
RUNTIME_PYTHON = str(RUNTIME_VENV / "bin" / "python") if RUNTIME_VENV.is_dir() else PYTHON
ENTRYPOINT = ROOT / "entrypoint.py"
NOOP_APP = BENCH / "apps" / "noop"
RAW_SERVE = BENCH / "apps" / "raw_serve.py"
REFERENCE_UNPACK = BENCH / "apps" / "reference_unpack.py"
WRK_POST = BENCH / "wrk" / "post_json.lua"
WRK_GET = BENCH / "wrk" / "get.lua"
SERVER_CPU = "0"
CLIENT_CPU = "1"
HOST = "127.0.0.1"
NOOP_BODY = b'{"value": 1, "label": "bench"}'

REFERENCE, RUNTIME, RUNTIME_UV = "reference", "runtime", "runtime-uvicorn"
RAW_HC, RAW_UV = "raw-hypercorn", "raw-uvicorn"
ALL_SERVERS = (REFERENCE, RUNTIME, RUNTIME_UV, RAW_HC, RAW_UV)
APP_SERVERS = (REFERENCE, RUNTIME, RUNTIME_UV)
ALL_PHASES = ("cold", "realapp", "load", "body", "busy", "routes")
# results.json sections each phase writes (for --merge)
PHASE_SECTIONS = {
    "cold": ("cold_start",),
    "realapp": ("realapp",),
    "load": ("memory", "load"),
    "body": ("body",),
    "busy": ("busy",),
    "routes": ("routes",),
}
BUSY_CLIENTS = 240  # blocking requests kept in flight: 40 in the pool's threads, 200 waiting


@dataclass(frozen=True)
class Profile:
    """How long each phase runs."""

    name: str
    rounds: int  # A/B rounds per load scenario
    duration: int  # seconds per wrk run
    warmup: int  # seconds of wrk before the first round
    cold_runs: int  # cold starts per server (median)
    realapp_runs: int  # real-app cold starts per (row, server), alternating
    rss_requests: int  # requests before "RSS after load"
    body_runs: dict  # body size label -> requests per server
    route_counts: tuple
    boot_runs: int  # boots per (server, route count)
    route_rounds: int
    route_duration: int
    retry_budget: int  # seconds of extra wrk runs allowed for runs that other load disturbed


FULL = Profile(
    "full",
    rounds=3,
    duration=5,
    warmup=2,
    cold_runs=5,
    realapp_runs=5,
    rss_requests=100_000,
    body_runs={"1 MB": 15, "30 MB": 5},
    route_counts=(1, 100, 1000),
    boot_runs=3,
    route_rounds=3,
    route_duration=4,
    retry_budget=150,
)
QUICK = Profile(
    "quick",
    rounds=2,
    duration=2,
    warmup=1,
    cold_runs=3,
    realapp_runs=3,
    rss_requests=20_000,
    body_runs={"1 MB": 5, "30 MB": 2},
    route_counts=(1, 100, 1000),
    boot_runs=1,
    route_rounds=1,
    route_duration=2,
    retry_budget=30,
)
NOISY_CPU0_PCT = 15.0  # a run where other processes took more of the server's CPU is retried
BODY_BYTES = {"1 MB": 1_000_000, "30 MB": 30_000_000}
# /ping poll interval during real-app boots (seconds long): the runtime answers 204 while it boots,
# so a 2 ms poll would hand it hundreds of connections a second on the CPU it unpacks and imports
# on, while the reference refuses them until it listens. 50 ms still resolves a boot to ~2%.
REALAPP_POLL = 0.05


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- servers


@dataclass
class ServerSpec:
    """How to start one server on one app."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    ping: str = "/ping"


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASH_", "RUNPOD_"))}
    if (
        os.geteuid() == 0
    ):  # the runtime would drop to uid 10001, which cannot read a Python under /root
        env["FLASH_USER"] = "root"
    return env


def make_spec(name: str, app_dir: Path, workdir: Path, loop: str = "asyncio") -> ServerSpec:
    """A fresh port and command for `name` serving the Flash app in app_dir.

    `loop` is the event loop of a raw floor: the one its runtime variant runs on.
    """
    port = free_port()
    env = _base_env()
    if name == REFERENCE:
        build_dir = workdir / f"reference-{app_dir.name}"
        if not (build_dir / f"{reference.HANDLER_MODULE}.py").exists():
            reference.build(app_dir, build_dir)
        return ServerSpec(name, reference.command(port, HOST, PYTHON), build_dir, env, port)
    if name in (RUNTIME, RUNTIME_UV):
        env.update(
            {
                "FLASH_MODULE_PATH": str(app_dir),
                "PORT": str(port),
                "HOST": HOST,
                "LOG_FORMAT": "json",
            }
        )
        if name == RUNTIME_UV:
            env["FLASH_SERVER"] = "uvicorn"
        return ServerSpec(name, [RUNTIME_PYTHON, str(ENTRYPOINT)], ROOT, env, port)
    if name in (RAW_HC, RAW_UV):
        kind = "hypercorn" if name == RAW_HC else "uvicorn"
        return ServerSpec(
            name,
            [RUNTIME_PYTHON, str(RAW_SERVE), kind, str(port), HOST, "--loop", loop],
            ROOT,
            env,
            port,
            ping="/",
        )
    raise ValueError(name)


def probe(port: int, path: str, timeout: float = 30.0) -> int | None:
    """One GET on a fresh connection: the status code, or None when nothing answers."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
            )
            head = sock.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        return None
    return int(parts[1])


class Server:
    """One server process on CPU 0, its log in a file, stopped by PID."""

    def __init__(self, spec: ServerSpec, logdir: Path):
        self.spec = spec
        self.log_path = logdir / f"{spec.name}-{spec.port}.log"
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> Server:
        logfile = open(self.log_path, "wb")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *self.spec.argv],
            cwd=self.spec.cwd,
            env=self.spec.env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logfile.close()
        return self

    def wait_ready(self, timeout: float = 120.0, poll: float = 0.002) -> dict:
        """Poll the ping path every `poll` s; times (s since exec) of the first answer and the
        first 200."""
        first_answer = None
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.spec.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            status = probe(self.spec.port, self.spec.ping)
            now = time.perf_counter() - self.started_at
            if status is not None and first_answer is None:
                first_answer = now
            if status == 200:
                return {"first_answer_s": first_answer, "first_200_s": now}
            time.sleep(poll)
        raise RuntimeError(f"{self.spec.name} not ready after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_bytes(self) -> int:
        """Resident memory of the server process and its descendants."""
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        return sum(rss_of(pid) for pid in pids)

    def load(self, path: str, connections: int, duration: float, method: str = "POST") -> dict:
        """A wrk run against this server (CPU accounting included)."""
        return wrk(self.spec.port, path, connections, duration, method, self.proc.pid)

    def event_loop(self) -> str:
        """The event loop the runtime reports in its boot line (asyncio when it says nothing)."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"boot"' in line and '"uvloop"' in line:
                return "uvloop"
        return "asyncio"

    def boot_record(self) -> dict | None:
        """The boot line with phase durations, when the server printed one: the runtime's `boot`
        (with its slowest imports), or the reference's `reference_boot` (bench/apps/reference_unpack.py)."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and 'boot"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") in ("boot", "reference_boot"):
                    return {
                        "phases_ms": record.get("phases_ms"),
                        "slowest_imports_ms": record.get("slowest_imports_ms"),
                        "bytecode_store_hits": record.get("bytecode_store_hits"),
                        "app_venv_links": record.get("app_venv_links"),
                    }
        return None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def rss_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def smoke_check(spec: ServerSpec) -> None:
    """The server answers the no-op route correctly before it is measured."""
    path = "/" if spec.name in (RAW_HC, RAW_UV) else "/noop"
    conn = http.client.HTTPConnection(HOST, spec.port, timeout=10)
    try:
        conn.request("POST", path, NOOP_BODY, {"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"{spec.name}: POST {path} -> {response.status} {body[:200]!r}")
    if spec.name in APP_SERVERS and json.loads(body) != {"value": 1}:
        raise RuntimeError(f"{spec.name}: POST {path} answered {body[:200]!r}")


def realapp_spec(
    row: str,
    name: str,
    real: build_real_artifact.RealArtifact,
    app_dir: Path,
    reference_tree: Path,
    cache: Path | None = None,
    store: Path | None = None,
) -> ServerSpec:
    """`name` booting the real app into app_dir (created here): from the archive (`artifact`, and
    for the runtime `unlinked`: the same with FLASH_LINK_APP_VENV=0) or from a fresh copy of the
    unpacked tree (`unpacked`); `cache` is the runtime's FLASH_CACHE_DIR, `store` its
    FLASH_BYTECODE_STORE (off when None), whose folder's `venv` is then its FLASH_APP_VENV (the
    image's /opt/app: APP_PACKAGES pip-installed, bench/apps/image_bytecode.py)."""
    port = free_port()
    env = _base_env()
    if name == REFERENCE:
        if row == "artifact":  # the image's /app: lb_handler.py alone, the archive on the volume
            app_dir.mkdir(parents=True)
            shutil.copy2(REFERENCE_UNPACK, app_dir / "lb_handler.py")
            env.update(
                {
                    "FLASH_BUILD_ARTIFACT_PATH": str(real.artifact),
                    "FLASH_RESOURCE_NAME": real.resource,
                    "FLASH_ENDPOINT_TYPE": "lb",
                }
            )
            argv = [
                PYTHON,
                "-m",
                "uvicorn",
                "lb_handler:app",
                "--host",
                HOST,
                "--port",
                str(port),
                "--timeout-keep-alive",
                "600",
            ]
        else:
            shutil.copytree(reference_tree, app_dir, symlinks=True)
            argv = reference.command(port, HOST, PYTHON)
        return ServerSpec(name, argv, app_dir, env, port)
    if name != RUNTIME:
        raise ValueError(name)
    env.update(
        {
            "FLASH_MODULE_PATH": str(app_dir),
            "FLASH_RESOURCE_NAME": real.resource,
            "PORT": str(port),
            "HOST": HOST,
            "LOG_FORMAT": "json",
        }
    )
    if row in ("artifact", "unlinked"):
        app_dir.mkdir(parents=True)
        env["FLASH_ARTIFACT_PATH"] = str(real.artifact)
        env["FLASH_LINK_APP_VENV"] = "0" if row == "unlinked" else "1"
    else:
        shutil.copytree(real.unpacked, app_dir, symlinks=True)
    if cache is not None:
        env["FLASH_CACHE_DIR"] = str(cache)
    env["FLASH_BYTECODE_STORE"] = str(store) if store is not None else "off"
    if store is not None:
        env["FLASH_APP_VENV"] = str(image_bytecode.venv_of(store))
    return ServerSpec(name, [RUNTIME_PYTHON, str(ENTRYPOINT)], ROOT, env, port)


def realapp_smoke_check(spec: ServerSpec) -> None:
    """The real app answers one of its routes correctly."""
    conn = http.client.HTTPConnection(HOST, spec.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/transform",
            b'{"text": "hello", "operation": "uppercase"}',
            {"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200 or json.loads(body).get("transformed") != "HELLO":
        raise RuntimeError(f"{spec.name}: POST /transform -> {response.status} {body[:300]!r}")


def summarize_boots(runs: list[dict]) -> dict:
    """Median, range and the median of each boot phase over boots; the slowest imports of the
    median boot."""
    first_200 = [r["first_200_ms"] for r in runs]
    median = statistics.median(first_200)
    middle = min(runs, key=lambda r: abs(r["first_200_ms"] - median))
    phases: dict[str, list[float]] = {}
    for run in runs:
        for key, value in (run.get("phases_ms") or {}).items():
            phases.setdefault(key, []).append(value)
    return {
        "first_200_ms": median,
        "min_ms": min(first_200),
        "max_ms": max(first_200),
        "first_answer_ms": statistics.median(r["first_answer_ms"] for r in runs),
        "phases_ms": {k: statistics.median(v) for k, v in phases.items()} or None,
        "slowest_imports_ms": middle.get("slowest_imports_ms"),
        "runs": runs,
    }


def python_version(python: str) -> str:
    return build_real_artifact.python_version(python)


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def settle(folder: Path, quiet: float = 1.0, timeout: float = 60.0) -> None:
    """Wait until nothing is added to `folder` for `quiet` s (a cache written after ready)."""
    deadline = time.monotonic() + timeout
    last = count_files(folder)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = count_files(folder)
        if now == last:
            return
        last = now


# --------------------------------------------------------------------------- load

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_busy_seconds() -> dict[str, float]:
    """Busy CPU time of each CPU since boot: user, nice, system and steal (irq and softirq are
    left out: on loopback they are mostly the benchmark's own packets)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name in ("cpu" + SERVER_CPU, "cpu" + CLIENT_CPU):
            v = [int(x) for x in fields]
            out[name] = (v[0] + v[1] + v[2] + v[7]) / CLOCK_TICKS
    return out


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(
    port: int,
    path: str,
    connections: int,
    duration: float,
    method: str = "POST",
    server_pid: int | None = None,
) -> dict:
    """One wrk run on CPU 1: requests/s, latency percentiles (ms), and how busy the two CPUs
    were with other processes meanwhile (`other_cpu0_pct` steals from the server)."""
    script = WRK_POST if method == "POST" else WRK_GET
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{path}",
    ]
    busy0, own0, wall0 = cpu_busy_seconds(), children_cpu_seconds(), time.perf_counter()
    server0 = process_cpu_seconds(server_pid) if server_pid else 0.0
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    wall = time.perf_counter() - wall0
    busy1, own1 = cpu_busy_seconds(), children_cpu_seconds()
    server1 = process_cpu_seconds(server_pid) if server_pid else 0.0
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(line[len("BENCH_JSON ") :])
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    cpu0, cpu1 = "cpu" + SERVER_CPU, "cpu" + CLIENT_CPU
    other0 = busy1[cpu0] - busy0[cpu0] - (server1 - server0)
    other1 = busy1[cpu1] - busy0[cpu1] - (own1 - own0)
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "mean_ms": lat["mean"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": sum(raw["errors"].values()),
        "errors_detail": raw["errors"],
        "server_cpu_pct": 100 * (server1 - server0) / wall if server_pid else None,
        # requests per second of server CPU: the cost per request, whatever share of CPU 0
        # other processes left to the server
        "rps_per_cpu": raw["requests"] / (server1 - server0) if server1 > server0 else None,
        "other_cpu0_pct": max(0.0, 100 * other0 / wall) if server_pid else None,
        "other_cpu1_pct": max(0.0, 100 * other1 / wall),
    }


def summarize(runs: list[dict]) -> dict:
    """Medians over rounds, with each round kept."""
    if not runs:
        return {}
    keys = (
        "rps",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "mean_ms",
        "rps_per_cpu",
        "server_cpu_pct",
        "other_cpu0_pct",
        "other_cpu1_pct",
    )
    out = {}
    for k in keys:
        values = [r[k] for r in runs if r.get(k) is not None]
        out[k] = statistics.median(values) if values else None
    out["errors"] = sum(r["errors"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["rounds"] = [{k: r[k] for k in (*keys, "errors")} for r in runs]
    return out


def rotated(items: list, shift: int) -> list:
    """Round r starts with a different server, so none always runs first."""
    if not items:
        return items
    shift %= len(items)
    return items[shift:] + items[:shift]


LOAD_SCENARIOS = (  # (key, method, path, connections, servers that run it)
    (
        "post_c1",
        "POST",
        "/noop",
        1,
        ALL_SERVERS,
    ),  # the floors too: the c1 latency target is near them
    ("post_c16", "POST", "/noop", 16, APP_SERVERS),
    ("post_c64", "POST", "/noop", 64, ALL_SERVERS),
    ("ping_c64", "GET", "/ping", 64, APP_SERVERS),
)


def scenario_path(server: str, path: str) -> str:
    return "/" if server in (RAW_HC, RAW_UV) else path


# --------------------------------------------------------------------------- phases


class Bench:
    def __init__(
        self,
        profile: Profile,
        servers: list[str],
        phases: list[str],
        workdir: Path,
        bytecode_store: bool = True,
    ):
        self.profile = profile
        self.bytecode_store = bytecode_store  # the realapp runtime boots with the images' store
        self.store: Path | None = None
        self.servers = servers
        self.phases = phases
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.running: list[Server] = []
        self.retry_left = float(profile.retry_budget)
        self.results: dict = {
            "profile": dataclasses.asdict(profile),
            "servers": servers,
            "failures": {},
            "cold_start": {},
            "realapp": {},
            "memory": {},
            "load": {},
            "body": {},
            "routes": {},
        }

    # -- helpers

    def fail(self, name: str, error: Exception) -> None:
        log(f"!! {name} failed: {error}")
        self.results["failures"][name] = str(error)[:4000]
        if name in self.servers:
            self.servers.remove(name)

    def launch(self, spec: ServerSpec, poll: float = 0.002) -> tuple[Server, dict]:
        server = Server(spec, self.logdir).start()
        self.running.append(server)
        try:
            times = server.wait_ready(poll=poll)
        except Exception:
            self.halt(server)
            raise
        return server, times

    def measure(
        self, server: Server, path: str, connections: int, duration: float, method: str = "POST"
    ) -> dict:
        """One load cell; while other processes took more than NOISY_CPU0_PCT of CPU 0, run it
        again (within the profile's retry budget) and keep the least disturbed run."""
        best = server.load(path, connections, duration, method)
        attempts = 1
        while (best["other_cpu0_pct"] or 0) > NOISY_CPU0_PCT and self.retry_left >= duration:
            self.retry_left -= duration
            again = server.load(path, connections, duration, method)
            attempts += 1
            if (again["other_cpu0_pct"] or 0) < (best["other_cpu0_pct"] or 0):
                best = again
        self.results["retries"] = self.results.get("retries", 0) + attempts - 1
        return {**best, "attempts": attempts}

    def halt(self, server: Server) -> None:
        server.stop()
        if server in self.running:
            self.running.remove(server)

    def halt_all(self) -> None:
        for server in list(self.running):
            self.halt(server)

    # -- cold start

    def phase_cold(self) -> None:
        names = [s for s in self.servers if s in APP_SERVERS]
        samples: dict[str, list[dict]] = {n: [] for n in names}
        log(f"cold start: {self.profile.cold_runs} boots each of {names} (after one unmeasured)")
        for round_no in range(-1, self.profile.cold_runs):
            for name in rotated(list(names), round_no):
                if name not in self.servers:
                    continue
                try:
                    spec = make_spec(name, NOOP_APP, self.workdir)
                    server, times = self.launch(spec)
                    if round_no == -1:
                        smoke_check(spec)
                    self.halt(server)
                except Exception as exc:  # a broken server is reported, not fatal
                    self.fail(name, exc)
                    continue
                if round_no >= 0:
                    samples[name].append(times)
        for name, runs in samples.items():
            if runs:
                self.results["cold_start"][name] = {
                    "first_answer_ms": statistics.median(r["first_answer_s"] for r in runs) * 1e3,
                    "first_200_ms": statistics.median(r["first_200_s"] for r in runs) * 1e3,
                    "runs": [{k.replace("_s", "_ms"): v * 1e3 for k, v in r.items()} for r in runs],
                }
                log(f"  {name}: {self.results['cold_start'][name]['first_200_ms']:.0f} ms to 200")

    # -- cold start of a real app

    REALAPP_ROWS = ("artifact", "unlinked", "unpacked", "cached")

    def phase_realapp(self) -> None:
        """Cold starts of a real Flash app (bench/apps/lb_example), built by the real `flash build`
        (bench/apps/build_real_artifact.py), each boot into a fresh app folder:

        artifact  exec -> first 200 from the archive on disk: the reference unpacks it as
                  worker-flash-lb does (bench/apps/reference_unpack.py), the runtime with
                  FLASH_ARTIFACT_PATH into an empty FLASH_MODULE_PATH, linking what the image's
                  app venv holds byte for byte (FLASH_LINK_APP_VENV, the default);
        unlinked  the runtime's `artifact` boot with FLASH_LINK_APP_VENV=0: every member written,
                  as for an app whose packages are not the image's versions (the reference's
                  figure for this path is its `artifact` one);
        unpacked  exec -> first 200 from a fresh copy of the unpacked tree (the reference on
                  bench/reference.py's generated handler);
        cached    the runtime booted twice from the archive with FLASH_CACHE_DIR on one fresh
                  folder: the second boot is measured (the first, filling the cache, is kept too,
                  and stopped only once nothing was added to the cache for a second); the
                  reference has no cache, so its figure for this path is its `artifact` one.

        The runtime boots with the images' bytecode store and app venv (bench/apps/image_bytecode.py:
        APP_PACKAGES installed and compiled as the images do) unless --no-bytecode-store; the
        reference has none.
        Runs alternate (reference, runtime, ...; each round starts with the other server), after
        one unmeasured round that also checks a route of each server.
        """
        names = [n for n in (REFERENCE, RUNTIME) if n in self.servers]
        section = self.results.setdefault("realapp", {})
        if not names:
            return
        target = python_version(RUNTIME_PYTHON)
        if REFERENCE in names and python_version(PYTHON) != target:
            raise RuntimeError(f"the reference's Python ({PYTHON}) is not {target}, the runtime's")
        real = build_real_artifact.ensure(target, log=log)
        self.store = (
            image_bytecode.ensure(RUNTIME_PYTHON, log)
            if self.bytecode_store and RUNTIME in names
            else None
        )
        if Path("/runpod-volume").is_dir():
            log("realapp: /runpod-volume exists; the runtime may use its default cache there")
        root = self.workdir / "realapp"
        root.mkdir(exist_ok=True)
        reference_tree = root / "reference-tree"
        if REFERENCE in names:
            reference.build(real.unpacked, reference_tree, real.manifest, real.resource)
        rows = {
            "artifact": names,
            "unlinked": [RUNTIME] if RUNTIME in names and self.store is not None else [],
            "unpacked": names,
            "cached": [RUNTIME] if RUNTIME in names else [],
        }
        runs = self.profile.realapp_runs
        log(
            f"realapp: {real.info['app']} ({real.info['artifact_bytes'] / 2**20:.1f} MB archive, "
            f"{real.info['members']} members); {runs} alternating boots per path and server "
            "(after one unmeasured round)"
        )
        samples: dict[tuple[str, str], list[dict]] = {
            (r, n): [] for r, who in rows.items() for n in who
        }
        failures: dict[str, str] = {}
        for round_no in range(-1, runs):
            for row, who in rows.items():
                for name in rotated(list(who), round_no):
                    key = f"{row}/{name}"
                    if key in failures:
                        continue
                    try:
                        result = self.realapp_boot(row, name, real, reference_tree, round_no == -1)
                    except Exception as exc:  # reported, not fatal
                        failures[key] = str(exc)[:4000]
                        log(f"!! realapp {key} failed: {str(exc)[:300]}")
                        continue
                    if round_no >= 0:
                        samples[(row, name)].append(result)
                        hits = result.get("bytecode_store_hits")
                        links = result.get("app_venv_links")
                        log(
                            f"  {row:8s} {name:9s} {result['first_200_ms']:6.0f} ms to 200"
                            + (
                                f" ({hits} modules from the bytecode store)"
                                if hits is not None
                                else ""
                            )
                            + (
                                f" ({links['linked_dirs']} folders linked to the app venv)"
                                if links
                                else ""
                            )
                        )
        shutil.rmtree(root, ignore_errors=True)
        out: dict[str, dict] = {}
        for (row, name), boots in samples.items():
            if not boots:
                continue
            summary = summarize_boots(boots)
            if row == "cached":
                summary["fill"] = summarize_boots([b["fill"] for b in boots])
                summary["cache_files"] = [b["cache_files"] for b in boots]
            out.setdefault(row, {})[name] = summary
        for row in ("unlinked", "cached"):
            if "reference" in out.get("artifact", {}) and row in out:
                out[row]["reference"] = {**out["artifact"]["reference"], "same_as": "artifact"}
        section.update(
            {
                "build": real.info,
                "runs": runs,
                "rows": out,
                "failures": failures,
                "bytecode_store": self.store is not None,
            }
        )
        for row in self.REALAPP_ROWS:
            for name, s_ in out.get(row, {}).items():
                log(
                    f"  {row:8s} {name:9s} median {s_['first_200_ms']:.0f} ms "
                    f"({s_['min_ms']:.0f}-{s_['max_ms']:.0f})"
                )

    def realapp_boot(
        self,
        row: str,
        name: str,
        real: build_real_artifact.RealArtifact,
        reference_tree: Path,
        smoke: bool,
    ) -> dict:
        """One measured boot (for `cached`: the second of two on one cache folder)."""
        run_dir = Path(tempfile.mkdtemp(prefix=f"{row}-{name}-", dir=self.workdir / "realapp"))
        try:
            if row != "cached":
                return self.realapp_once(
                    realapp_spec(
                        row, name, real, run_dir / "app", reference_tree, store=self.store
                    ),
                    smoke,
                )
            cache = run_dir / "cache"
            cache.mkdir()
            fill = self.realapp_once(
                realapp_spec(
                    "artifact", name, real, run_dir / "app1", reference_tree, cache, self.store
                ),
                smoke,
                before_stop=lambda: settle(cache),
            )
            files = count_files(cache)
            second = self.realapp_once(
                realapp_spec(
                    "artifact", name, real, run_dir / "app2", reference_tree, cache, self.store
                ),
                smoke,
            )
            return {**second, "fill": fill, "cache_files": files}
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    def realapp_once(self, spec: ServerSpec, smoke: bool, before_stop=None) -> dict:
        os.sync()  # the fresh tree's (or the last unpack's) dirty pages are not written back mid-boot
        server, times = self.launch(spec, poll=REALAPP_POLL)
        try:
            if smoke:
                realapp_smoke_check(spec)
            if before_stop is not None:
                before_stop()
        finally:
            self.halt(server)
        record = server.boot_record() or {}
        return {
            "first_answer_ms": times["first_answer_s"] * 1e3,
            "first_200_ms": times["first_200_s"] * 1e3,
            "phases_ms": record.get("phases_ms"),
            "slowest_imports_ms": record.get("slowest_imports_ms"),
            "bytecode_store_hits": record.get("bytecode_store_hits"),
            "app_venv_links": record.get("app_venv_links"),
        }

    # -- long-lived servers: memory, load, body

    def start_long_lived(self) -> dict[str, Server]:
        started: dict[str, Server] = {}
        for name in list(self.servers):  # runtimes first: each floor runs on its runtime's loop
            variant = started.get({RAW_HC: RUNTIME, RAW_UV: RUNTIME_UV}.get(name, ""))
            loop = variant.event_loop() if variant else "asyncio"
            if name in (RAW_HC, RAW_UV):
                self.results.setdefault("floor_loop", {})[name] = loop
            try:
                spec = make_spec(name, NOOP_APP, self.workdir, loop)
                server, _ = self.launch(spec)
                smoke_check(spec)
                started[name] = server
            except Exception as exc:
                self.fail(name, exc)
        return started

    def phase_memory(self, live: dict[str, Server]) -> None:
        names = [n for n in live if n in APP_SERVERS]
        time.sleep(2.0)
        for name in names:
            self.results["memory"][name] = {"idle_rss_mb": live[name].rss_bytes() / 2**20}
        target = self.profile.rss_requests
        log(f"memory: idle RSS, then {target} no-op POSTs (c64) each")
        for name in names:
            server, sent, elapsed = live[name], 0, 0.0
            while sent < target:
                # chunks sized from the rate so far, so the total overshoots by little
                chunk = 3.0 if not sent else min(10.0, max(1.0, (target - sent) * elapsed / sent))
                start = time.perf_counter()
                result = server.load("/noop", 64, chunk)
                elapsed += time.perf_counter() - start
                sent += result["requests"]
                if result["errors"]:
                    memory = self.results["memory"][name]
                    memory["errors"] = memory.get("errors", 0) + result["errors"]
            entry = self.results["memory"][name]
            entry["requests"] = sent
            entry["loaded_rss_mb"] = server.rss_bytes() / 2**20
            log(
                f"  {name}: idle {entry['idle_rss_mb']:.1f} MB, after {sent} requests "
                f"{entry['loaded_rss_mb']:.1f} MB"
            )

    def phase_load(self, live: dict[str, Server]) -> None:
        p = self.profile
        for name, server in live.items():  # warm-up (servers already warmed by memory skip it)
            if name not in self.results["memory"]:
                server.load(scenario_path(name, "/noop"), 64, p.warmup)
        log(f"load: {len(LOAD_SCENARIOS)} scenarios x {p.rounds} rounds x {p.duration}s")
        runs: dict[str, dict[str, list]] = {}
        for round_no in range(p.rounds):
            for key, method, path, conns, who in LOAD_SCENARIOS:
                names = [n for n in live if n in who]
                for name in rotated(names, round_no):
                    server = live[name]
                    result = self.measure(
                        server, scenario_path(name, path), conns, p.duration, method
                    )
                    runs.setdefault(key, {}).setdefault(name, []).append(result)
        for key, by_server in runs.items():
            self.results["load"][key] = {n: summarize(r) for n, r in by_server.items()}
            for name, s in self.results["load"][key].items():
                log(
                    f"  {key:9s} {name:16s} {s['rps']:8.0f} req/s  p50 {s['p50_ms']:.2f} ms  "
                    f"p99 {s['p99_ms']:.2f} ms  errors {s['errors']}"
                )

    def phase_body(self, live: dict[str, Server]) -> None:
        names = [n for n in live if n in APP_SERVERS]
        for label, runs in self.profile.body_runs.items():
            body, rows = make_body(BODY_BYTES[label])
            log(f"body {label} ({len(body)} bytes, {rows} rows): {runs} requests each")
            conns = {
                n: http.client.HTTPConnection(HOST, live[n].spec.port, timeout=300) for n in names
            }
            samples: dict[str, list[float]] = {n: [] for n in names}
            errors: dict[str, str] = {}
            for round_no in range(runs + 1):  # round 0 warms up and is not counted
                for name in rotated(names, round_no):
                    if name in errors:
                        continue
                    try:
                        seconds = post_body(conns[name], body, rows)
                    except Exception as exc:
                        errors[name] = str(exc)
                        continue
                    if round_no:
                        samples[name].append(seconds * 1e3)
            for conn in conns.values():
                conn.close()
            self.results["body"][label] = {
                name: (
                    {
                        "median_ms": statistics.median(v),
                        "min_ms": min(v),
                        "max_ms": max(v),
                        "bytes": len(body),
                        "runs": v,
                    }
                    if v
                    else {"error": errors.get(name)}
                )
                for name, v in samples.items()
            }
            for name, s in self.results["body"][label].items():
                log(
                    f"  {name:16s} "
                    + (f"{s['median_ms']:.1f} ms" if "median_ms" in s else f"error {s['error']}")
                )

    # -- /ping while every pool thread sleeps

    def phase_busy(self, live: dict[str, Server]) -> None:
        """`GET /ping` latency (wrk, 4 connections) while BUSY_CLIENTS blocking `def` requests are
        in flight: the thread pool is full and requests wait for it."""
        names = [n for n in live if n in APP_SERVERS]
        duration = self.profile.duration * 2
        log(f"busy pool: /ping for {duration}s under {BUSY_CLIENTS} sleeping requests on {names}")
        self.results["busy"] = {}
        for name in names:
            server = live[name]
            stop = time.monotonic() + duration + 6
            done = {"ok": 0, "errors": 0}
            flooder = threading.Thread(target=_keep_sleeping, args=(server.spec.port, stop, done))
            flooder.start()
            time.sleep(3)  # the pool fills and the line forms
            try:
                run = wrk(server.spec.port, "/ping", 4, duration, "GET", server.proc.pid)
            finally:
                flooder.join(duration + 60)
            self.results["busy"][name] = {
                **run,
                "sleeping_ok": done["ok"],
                "sleeping_errors": done["errors"],
            }
            log(
                f"  {name:16s} /ping p50 {run['p50_ms']:.2f} ms p99 {run['p99_ms']:.2f} ms "
                f"max {run['max_ms']:.1f} ms; sleeping requests ok {done['ok']} errors {done['errors']}"
            )

    # -- routes

    def phase_routes(self) -> None:
        """Boot time and throughput by route count.

        The 1000/1 ratios compare route counts, so the counts alternate as the servers do: each
        boot round goes through every (count, server) pair, and all pairs stay up during the
        throughput rounds, measured in a rotating order.
        """
        p = self.profile
        names = [n for n in (REFERENCE, RUNTIME) if n in self.servers]
        log(f"routes: {p.route_counts} routes; {p.boot_runs} boots, {p.route_rounds} rounds each")
        apps = {
            count: gen_routes.generate(count, self.workdir / f"routes-{count}")
            for count in p.route_counts
        }
        pairs = [(count, name) for count in p.route_counts for name in names]
        entries = {
            count: self.results["routes"].setdefault(str(count), {}) for count in p.route_counts
        }
        failed: set[tuple[int, str]] = set()

        def fail(pair: tuple[int, str], exc: Exception) -> None:
            failed.add(pair)
            entries[pair[0]][pair[1]] = {"error": str(exc)[:2000]}

        boots: dict[tuple[int, str], list[float]] = {pair: [] for pair in pairs}
        phases: dict[tuple[int, str], dict | None] = {}
        for round_no in range(p.boot_runs):
            for pair in rotated(pairs, round_no):
                if pair in failed:
                    continue
                try:
                    server, times = self.launch(make_spec(pair[1], apps[pair[0]], self.workdir))
                    self.halt(server)
                    boots[pair].append(times["first_200_s"] * 1e3)
                    phases[pair] = (server.boot_record() or {}).get("phases_ms")
                except Exception as exc:
                    fail(pair, exc)
        live = {}
        for pair in pairs:
            if pair in failed:
                continue
            try:
                live[pair], _ = self.launch(make_spec(pair[1], apps[pair[0]], self.workdir))
                live[pair].load(gen_routes.last_route(pair[0]), 64, 1)
            except Exception as exc:
                fail(pair, exc)
        runs: dict[tuple[int, str], list] = {pair: [] for pair in live}
        for round_no in range(p.route_rounds):
            for pair in rotated(list(live), round_no):
                runs[pair].append(
                    self.measure(live[pair], gen_routes.last_route(pair[0]), 64, p.route_duration)
                )
        for (count, name), server in live.items():
            self.halt(server)
            load = summarize(runs[(count, name)])
            boot_ms = statistics.median(boots[(count, name)]) if boots[(count, name)] else None
            entries[count][name] = {
                "boot_ms": boot_ms,
                "boots_ms": boots[(count, name)],
                "boot_phases_ms": phases.get((count, name)),
                "route": gen_routes.last_route(count),
                **load,
            }
            log(
                f"  {count:5d} routes {name:10s} boot {boot_ms or 0:.0f} ms  {load['rps']:.0f} req/s"
            )

    # -- all

    def run(self) -> dict:
        t0 = time.perf_counter()
        try:
            if "cold" in self.phases:
                self.phase_cold()
            if "realapp" in self.phases:
                try:
                    self.phase_realapp()
                except Exception as exc:  # the build or the reference's Python: reported
                    log(f"!! realapp failed: {exc}")
                    self.results["failures"]["realapp"] = str(exc)[:4000]
            if {"load", "body", "busy"} & set(self.phases):
                live = self.start_long_lived()
                if "load" in self.phases:
                    self.phase_memory(live)
                    self.phase_load(live)
                if "body" in self.phases:
                    self.phase_body(live)
                if "busy" in self.phases:
                    self.phase_busy(live)
                self.halt_all()
            if "routes" in self.phases:
                self.phase_routes()
        finally:
            self.halt_all()
        self.results["elapsed_s"] = time.perf_counter() - t0
        return self.results


def _keep_sleeping(port: int, stop: float, done: dict) -> None:
    """Keep BUSY_CLIENTS `POST /sleep` requests in flight until `stop` (monotonic)."""
    import asyncio

    async def client() -> None:
        body = b'{"seconds": 2}'
        request = (
            b"POST /sleep HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(HOST, port)
                while time.monotonic() < stop:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(
                        next(
                            line.split(b":")[1]
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        )
                    )
                    await reader.readexactly(length)
                    done["ok" if head.startswith(b"HTTP/1.1 200") else "errors"] += 1
                writer.close()
            except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError):
                done["errors"] += 1
                await asyncio.sleep(0.1)

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(BUSY_CLIENTS)))

    asyncio.run(main())


def make_body(size: int) -> tuple[bytes, int]:
    """A JSON object {"rows": [[float x 16], ...], "name": ...} of about `size` bytes."""
    rng = random.Random(size)

    def row():
        return "[" + ",".join(f"{rng.uniform(-1000, 1000):.6f}" for _ in range(16)) + "]"

    sample = [row() for _ in range(64)]
    per_row = sum(len(r) + 1 for r in sample) / len(sample)
    count = max(1, int((size - 40) / per_row))
    rows = [sample[i % len(sample)] if i < len(sample) else row() for i in range(count)]
    body = ('{"name": "bench", "rows": [' + ",".join(rows) + "]}").encode()
    return body, count


def post_body(conn: http.client.HTTPConnection, body: bytes, rows: int) -> float:
    start = time.perf_counter()
    conn.request("POST", "/bulk", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200 or json.loads(answer) != {"rows": rows}:
        raise RuntimeError(f"/bulk -> {response.status} {answer[:300]!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the runtime against the reference.")
    parser.add_argument("--quick", action="store_true", help="short rounds (bench-quick)")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS))
    parser.add_argument("--phases", default=",".join(ALL_PHASES))
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument(
        "--no-bytecode-store",
        action="store_true",
        help="realapp: boot the runtime without the images' bytecode store and app venv",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the sections of the phases not run from OUT/results.json",
    )
    args = parser.parse_args()
    requested = {s for s in args.servers.split(",") if s}
    phases = [p for p in args.phases.split(",") if p]
    if unknown := (requested - set(ALL_SERVERS)) | (set(phases) - set(ALL_PHASES)):
        parser.error(f"unknown server/phase: {sorted(unknown)}")
    servers = [s for s in ALL_SERVERS if s in requested]
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: run bench/setup.sh")
    if os.cpu_count() < 2:
        parser.error("needs two CPUs (server on 0, load generator on 1)")
    if not ENTRYPOINT.exists():
        for name in (RUNTIME, RUNTIME_UV):
            if name in servers:
                servers.remove(name)
                log(f"{name}: skipped, {ENTRYPOINT} does not exist yet")
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    # The runtime is installed editable here; write its bytecode now, as a wheel install (the
    # images) does, so boots are not timed compiling it (PYTHONDONTWRITEBYTECODE may be set).
    subprocess.run([RUNTIME_PYTHON, "-m", "compileall", "-q", str(ROOT / "runtime")], check=True)

    profile = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="flash-bench-"))
    log(f"profile {profile.name}, servers {servers}, phases {phases}, workdir {workdir}")
    bench = Bench(profile, servers, phases, workdir, bytecode_store=not args.no_bytecode_store)
    try:
        load_before = os.getloadavg()
        results = bench.run()
        results["loadavg"] = {"before": load_before, "after": os.getloadavg()}
    except BaseException:
        log(f"aborted; server logs kept in {workdir / 'logs'}")
        raise
    skipped = {
        s: "entrypoint.py missing"
        for s in (RUNTIME, RUNTIME_UV)
        if s in args.servers.split(",") and s not in servers and s not in results["failures"]
    }
    results["failures"].update(skipped)
    results["environment"] = report.environment(PYTHON)
    stamp = {
        "date": results["environment"]["date"],
        "profile": profile.name,
        "commit": results["environment"]["commit"],
        "counts": dataclasses.asdict(profile),
    }
    results["measured"] = {section: stamp for phase in phases for section in PHASE_SECTIONS[phase]}
    if args.merge:
        merge_earlier(results, args.out / "results.json", phases)
    results["targets"] = report.targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(report.markdown(results))
    report.chart(results, args.out / "chart.png")
    if results["failures"] or args.keep_logs:
        log(f"server logs kept in {workdir / 'logs'}")
        for path in workdir.iterdir():
            if path.name != "logs":
                shutil.rmtree(path, ignore_errors=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {results['elapsed_s']:.0f}s: {args.out}/results.md, results.json, chart.png")
    print()
    print(report.targets_table(results["targets"]))
    if results.get("realapp") or results.get("cold_start"):
        print()
        print(report.cold_start_table(results))
    return 0


def merge_earlier(results: dict, path: Path, phases: list[str]) -> None:
    """Copy the sections of the phases not run now from an earlier results.json, each with the
    date, profile and commit it was measured at."""
    if not path.exists():
        return
    earlier = json.loads(path.read_text())
    env = earlier.get("environment", {})
    default = {
        "date": env.get("date"),
        "profile": (earlier.get("profile") or {}).get("name"),
        "commit": env.get("commit"),
        "counts": earlier.get("profile"),
    }
    for phase, sections in PHASE_SECTIONS.items():
        if phase in phases:
            continue
        for section in sections:
            if earlier.get(section):
                results[section] = earlier[section]
                results["measured"][section] = (earlier.get("measured") or {}).get(section, default)
    if "load" not in phases and earlier.get("floor_loop"):
        results["floor_loop"] = earlier["floor_loop"]


if __name__ == "__main__":
    sys.exit(main())
