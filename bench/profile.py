"""Where the runtime's time goes per request: py-spy on the server under wrk load.

    .venv/bin/python bench/profile.py [--server hypercorn|uvicorn|reference] [--seconds 10]
        [--connections 64] [--path /noop]   (also: --server raw-hypercorn|raw-uvicorn)

Starts the server on the benchmark app (CPU 0), loads it with wrk (CPU 1) while `py-spy record`
samples it, and writes bench/results/profile-<server>.raw (collapsed stacks) and
bench/results/profile-<server>.md (top functions by own and inclusive time, time by package).
Needs py-spy (`pip install py-spy`) and permission to ptrace the server (root, or
kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PACKAGES = (
    "runtime",
    "starlette",
    "hypercorn",
    "h11",
    "h2",
    "uvicorn",
    "httptools",
    "fastapi",
    "pydantic",
    "pydantic_core",
    "structlog",
    "msgspec",
    "orjson",
    "anyio",
    "asyncio",
    "logging",
    "json",
    "runpod_flash",
    "bench_app",
    "prometheus_client",
    "contextvars",
    "uuid",
    "email",
    "http",
    "socket",
    "selectors",
    "ssl",
    "typing",
    "inspect",
    "enum",
    "functools",
    "threading",
    "concurrent",
)


def package_of(path: str) -> str:
    """The top-level package (or stdlib module) a frame's file belongs to."""
    parts = path.replace("\\", "/").split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "runtime" in parts:
        parts = parts[parts.index("runtime") :]
    head = parts[0] if parts else path
    head = head[:-3] if head.endswith(".py") else head
    return head if head in PACKAGES else (head or "?")


def parse(raw: str) -> list[tuple[list[tuple[str, str]], int]]:
    """Collapsed stacks: [([(function, file), ... outermost first], samples)]."""
    stacks = []
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            m = FRAME.match(frame.strip())
            frames.append((m["func"], m["file"]) if m else (frame.strip(), "?"))
        stacks.append((frames, int(count)))
    return stacks


def summarize(stacks, top: int = 25) -> str:
    total = sum(n for _, n in stacks)
    if not total:
        return "no samples\n"
    own, inclusive, own_pkg = collections.Counter(), collections.Counter(), collections.Counter()
    runtime_inclusive = collections.Counter()
    for frames, n in stacks:
        leaf = frames[-1]
        own[f"{leaf[0]} ({leaf[1]})"] += n
        own_pkg[package_of(leaf[1])] += n
        for func, path in set(frames):
            inclusive[f"{func} ({path})"] += n
            if package_of(path) == "runtime":
                runtime_inclusive[f"{func} ({path})"] += n

    def pct(n):
        return f"{100 * n / total:.1f}"

    out = [
        f"{total} samples of the server's busy time (idle waits in the event loop excluded).",
        "",
        "### Own time by package (where the CPU actually was)",
        "",
        "| package | share % |",
        "|---|---:|",
    ]
    out += [f"| {name} | {pct(n)} |" for name, n in own_pkg.most_common(20)]
    out += ["", f"### Top {top} functions by own time", "", "| function | share % |", "|---|---:|"]
    out += [f"| `{name}` | {pct(n)} |" for name, n in own.most_common(top)]
    out += [
        "",
        f"### Top {top} functions by inclusive time",
        "",
        "| function | share % |",
        "|---|---:|",
    ]
    out += [f"| `{name}` | {pct(n)} |" for name, n in inclusive.most_common(top)]
    out += [
        "",
        "### The runtime's own functions by inclusive time",
        "",
        "| function | share % |",
        "|---|---:|",
    ]
    out += [f"| `{name}` | {pct(n)} |" for name, n in runtime_inclusive.most_common(top)]
    return "\n".join(out) + "\n"


def spy_summary(output: str) -> str:
    """py-spy's sample and error counts."""
    m = re.search(r"Samples: (\d+) Errors: (\d+)", output)
    return f"py-spy: {m[1]} samples, {m[2]} errors." if m else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default="hypercorn",
        choices=("hypercorn", "uvicorn", "reference", "raw-hypercorn", "raw-uvicorn"),
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--path", default="/noop")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(run.PYTHON).parent / "py-spy")
    if not Path(py_spy).exists():
        parser.error("py-spy not found: .venv/bin/pip install py-spy")

    name = {"hypercorn": run.RUNTIME, "uvicorn": run.RUNTIME_UV}.get(args.server, args.server)
    path = run.scenario_path(name, args.path)
    label = f"profile-{name}"
    workdir = Path(tempfile.mkdtemp(prefix="flash-profile-"))
    args.out.mkdir(parents=True, exist_ok=True)
    raw_path = args.out / f"{label}.raw"
    loop = (
        "uvloop" if name == run.RAW_UV else "asyncio"
    )  # the loop of the runtime variant it floors
    server = run.Server(run.make_spec(name, run.NOOP_APP, workdir, loop), workdir)
    try:
        server.start()
        server.wait_ready()
        run.smoke_check(server.spec)
        server.load(path, args.connections, 2)  # warm-up
        spy = subprocess.Popen(
            [
                "taskset",
                "-c",
                run.CLIENT_CPU,
                py_spy,
                "record",
                "--pid",
                str(server.proc.pid),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--output",
                str(raw_path),
                "--duration",
                str(args.seconds + 1),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(0.5)
        result = server.load(path, args.connections, args.seconds)
        spy_out, _ = spy.communicate(timeout=args.seconds + 60)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if not raw_path.exists():
        print(spy_out, file=sys.stderr)
        return 1
    report = [
        f"# Profile: `{name}` under load",
        "",
        f"wrk c{args.connections} on `POST {path}` for {args.seconds} s while "
        f"`py-spy record --rate {args.rate}` sampled the server: {result['rps']:.0f} req/s "
        f"under sampling (p50 {result['p50_ms']:.2f} ms), server CPU "
        f"{result['server_cpu_pct']:.0f} %, {result['rps_per_cpu']:.0f} requests per server "
        "CPU-second. " + spy_summary(spy_out),
        "",
        summarize(parse(raw_path.read_text())),
    ]
    (args.out / f"{label}.md").write_text("\n".join(report))
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
