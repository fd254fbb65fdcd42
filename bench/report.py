"""Turn bench/run.py's results into the targets, a Markdown report and a chart."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("runpod-flash", "fastapi", "pydantic", "pydantic-core", "starlette", "uvicorn",
            "uvloop", "httptools", "hypercorn", "h11", "msgspec", "orjson", "structlog")
SERVER_NOTES = {
    "reference": "runpod_flash `create_lb_handler` (FastAPI) on uvicorn, "
                 "`uvicorn handler:app --timeout-keep-alive 600`, access log on",
    "runtime": "`entrypoint.py` (Starlette + msgspec on Hypercorn), access log on",
    "runtime-uvicorn": "`entrypoint.py` with `FLASH_SERVER=uvicorn`",
    "raw-hypercorn": "do-nothing ASGI app on Hypercorn (the floor under `runtime`)",
    "raw-uvicorn": "do-nothing ASGI app on uvicorn (the floor under `runtime-uvicorn`)",
}
COLORS = {"reference": "#c0504d", "runtime": "#4f81bd", "runtime-uvicorn": "#9bbb59",
          "raw-hypercorn": "#a6a6a6", "raw-uvicorn": "#d9d9d9"}


# --------------------------------------------------------------------------- environment

def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(python: str) -> dict:
    """Date, machine, Python and package versions of the measured environment."""
    model = next((line.split(":", 1)[1].strip() for line in _run(["lscpu"]).splitlines()
                  if line.startswith("Model name")), platform.processor())
    code = ("import json, sys\nfrom importlib import metadata\nout = {}\n"
            f"for name in {PACKAGES!r}:\n"
            "    try: out[name] = metadata.version(name)\n"
            "    except metadata.PackageNotFoundError: out[name] = None\n"
            "print(json.dumps({'python': sys.version.split()[0], 'packages': out}))")
    versions = json.loads(_run([python, "-c", code]) or '{"python": null, "packages": {}}')
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": versions["python"],
        "packages": versions["packages"],
        "wrk": " ".join(_run(["wrk", "-v"]).split()[:2]) or None,
        "commit": _run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse",
                        "--short", "HEAD"]) or None,
    }


# --------------------------------------------------------------------------- targets

def _get(results: dict, *keys):
    node = results
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _ratio(a, b):
    return a / b if a is not None and b else None


def targets(results: dict) -> list[dict]:
    """Each target: what it compares, the measured ratio, the bound, and pass/fail/n/a.

    Throughput ratios also come as `per_cpu`: the same ratio of requests per second of server
    CPU, which holds when other processes take part of CPU 0 during some runs.
    """
    load, routes = results.get("load", {}), results.get("routes", {})
    rows = []

    def add(name, value, op, bound, detail, per_cpu=None):
        ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
        rows.append({"target": name, "value": value, "per_cpu": per_cpu, "op": op,
                     "bound": bound, "status": "n/a" if ok is None else ("pass" if ok else "FAIL"),
                     "detail": detail})

    def rps_ratio(a_keys, b_keys):
        return (_ratio(_get(load, *a_keys, "rps"), _get(load, *b_keys, "rps")),
                _ratio(_get(load, *a_keys, "rps_per_cpu"), _get(load, *b_keys, "rps_per_cpu")))

    for server, floor in (("runtime", "raw-hypercorn"), ("runtime-uvicorn", "raw-uvicorn")):
        value, per_cpu = rps_ratio(("post_c64", server), ("post_c64", floor))
        add(f"{server} c64 req/s / {floor} c64 req/s", value, ">=", 0.85,
            "no-op JSON POST, 64 connections", per_cpu)
    value, per_cpu = rps_ratio(("post_c64", "runtime-uvicorn"), ("post_c64", "reference"))
    add("runtime-uvicorn c64 req/s / reference c64 req/s", value, ">=", 3.0, "no-op JSON POST",
        per_cpu)
    add("runtime-uvicorn c1 p50 / reference c1 p50",
        _ratio(_get(load, "post_c1", "runtime-uvicorn", "p50_ms"),
               _get(load, "post_c1", "reference", "p50_ms")), "<=", 0.4, "no-op JSON POST")
    add("runtime cold start to first 200 / reference",
        _ratio(_get(results, "cold_start", "runtime", "first_200_ms"),
               _get(results, "cold_start", "reference", "first_200_ms")), "<=", 0.5,
        "exec -> first 200 on /ping, median")
    add("runtime idle RSS / reference idle RSS",
        _ratio(_get(results, "memory", "runtime", "idle_rss_mb"),
               _get(results, "memory", "reference", "idle_rss_mb")), "<=", 0.7, "after boot")
    add("runtime boot, 1000 routes / 1 route",
        _ratio(_get(routes, "1000", "runtime", "boot_ms"), _get(routes, "1", "runtime", "boot_ms")),
        "<=", 2.0, "exec -> first 200")
    add("runtime req/s, 1000 routes / 1 route",
        _ratio(_get(routes, "1000", "runtime", "rps"), _get(routes, "1", "runtime", "rps")),
        ">=", 0.9, "c64 on the last route",
        _ratio(_get(routes, "1000", "runtime", "rps_per_cpu"),
               _get(routes, "1", "runtime", "rps_per_cpu")))
    add("30 MB body: reference latency / runtime latency",
        _ratio(_get(results, "body", "30 MB", "reference", "median_ms"),
               _get(results, "body", "30 MB", "runtime", "median_ms")), ">=", 3.0,
        "request -> validated args -> tiny answer")
    return rows


def targets_table(rows: list[dict]) -> str:
    lines = ["| target | measured | per server CPU-s | bound | result |",
             "|---|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['target']} ({row['detail']}) | {_f(row['value'], '.2f', 'n/a')} | "
                     f"{_f(row.get('per_cpu'), '.2f')} | {row['op']} {row['bound']:g} | "
                     f"{row['status']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- markdown

def _f(value, fmt=".0f", none="–"):
    return none if value is None else format(value, fmt)


def _x(value) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _loadavg(results: dict) -> str:
    la = results.get("loadavg") or {}
    fmt = lambda v: "/".join(f"{x:.1f}" for x in v) if v else "?"
    return f"{fmt(la.get('before'))} (1/5/15 min) before, {fmt(la.get('after'))} after"


def markdown(results: dict) -> str:
    env = results.get("environment", {})
    prof = results.get("profile", {})
    out = ["# Benchmark: the runtime against the reference", ""]
    out += [f"- Date: {env.get('date')}; elapsed {results.get('elapsed_s', 0):.0f} s "
            f"(profile `{prof.get('name')}`)",
            f"- Machine: {env.get('cpu')}, {env.get('cpus')} CPUs, Linux {env.get('kernel')}; "
            "servers pinned to CPU 0, wrk and the driver to CPU 1 (taskset)",
            f"- Python {env.get('python')}; "
            + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v),
            f"- Load generator: {env.get('wrk')}, one thread",
            f"- Project commit: {env.get('commit') or 'uncommitted'}",
            f"- Rounds: {prof.get('rounds')} x {prof.get('duration')} s per load cell, servers "
            "alternating (each round starts with the next server); figures are medians over "
            "rounds.",
            f"- Other load: load average {_loadavg(results)}; a load run during which other "
            "processes took more than 15% of CPU 0 was repeated (within a time budget) and the "
            f"least disturbed attempt kept ({results.get('retries', 0)} repeats). "
            "`req per server CPU-s` (requests / CPU seconds the server used) is the cost per "
            "request whatever CPU share the server got; compare it when `others on CPU 0 %` is "
            "high.",
            "- Raw floors on the event loop their runtime variant uses: "
            + (", ".join(f"`{k}` {v}" for k, v in (results.get("floor_loop") or {}).items())
               or "n/a"), ""]
    out += ["Servers:", ""] + [f"- `{k}`: {v}" for k, v in SERVER_NOTES.items()
                               if k in results.get("servers", []) or k in results.get("failures", {})]
    out += ["", "## Targets", "", targets_table(results.get("targets", [])), ""]

    load = results.get("load", {})
    if load:
        out += ["## Throughput and latency", "",
                "No-op JSON POST (`{\"value\": 1, \"label\": \"bench\"}` -> `{\"value\": 1}`, both "
                "arguments validated) and `GET /ping`. The raw floors answer the same POST "
                "without an app.", "",
                "| scenario | server | req/s | p50 ms | p99 ms | vs reference | req per server "
                "CPU-s | vs reference | server CPU % | others on CPU 0 % | errors |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key, title in (("post_c1", "POST c1"), ("post_c16", "POST c16"),
                           ("post_c64", "POST c64"), ("ping_c64", "GET /ping c64")):
            ref = _get(load, key, "reference", "rps")
            ref_cpu = _get(load, key, "reference", "rps_per_cpu")
            for server, s in load.get(key, {}).items():
                out.append(f"| {title} | {server} | {s['rps']:.0f} | {s['p50_ms']:.2f} | "
                           f"{s['p99_ms']:.2f} | {_x(_ratio(s['rps'], ref))} | "
                           f"{_f(s.get('rps_per_cpu'))} | "
                           f"{_x(_ratio(s.get('rps_per_cpu'), ref_cpu))} | "
                           f"{_f(s.get('server_cpu_pct'))} | {_f(s.get('other_cpu0_pct'))} | "
                           f"{s['errors']} |")
        out.append("")

    cold = results.get("cold_start", {})
    if cold:
        out += ["## Cold start", "",
                "Process exec -> first answer on `/ping` (any status) and -> first 200, "
                f"median of {prof.get('cold_runs')} (one unmeasured boot first).", "",
                "| server | first answer ms | first 200 ms | runs (first 200 ms) |",
                "|---|---:|---:|---|"]
        for server, s in cold.items():
            runs = ", ".join(f"{r['first_200_ms']:.0f}" for r in s["runs"])
            out.append(f"| {server} | {s['first_answer_ms']:.0f} | {s['first_200_ms']:.0f} | "
                       f"{runs} |")
        out.append("")

    memory = results.get("memory", {})
    if memory:
        out += ["## Memory", "", "RSS of the server process (and children), idle after boot and "
                "after the no-op POSTs (c64).", "",
                "| server | idle RSS MB | requests | RSS after MB |", "|---|---:|---:|---:|"]
        for server, s in memory.items():
            out.append(f"| {server} | {s['idle_rss_mb']:.1f} | {s.get('requests', 0)} | "
                       f"{_f(s.get('loaded_rss_mb'), '.1f')} |")
        out.append("")

    routes = results.get("routes", {})
    if routes:
        out += ["## Routes", "", "Generated manifests of N no-op POST routes; boot = exec -> first "
                f"200 (median of {prof.get('boot_runs')}); throughput = c64 on the last route "
                "registered. Route counts alternate like the servers: boot and load rounds rotate "
                "through every (count, server) pair, so the 1000/1 ratios compare the same moments.", "",
                "| routes | server | boot ms | runtime boot phases ms | req/s | req per server "
                "CPU-s | p50 ms | p99 ms | others on CPU 0 % | errors |",
                "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for count, by_server in routes.items():
            for server, s in by_server.items():
                if "error" in s:
                    out.append(f"| {count} | {server} | error | | | | | | | |")
                    continue
                phases = ", ".join(f"{k} {v:.0f}" for k, v in
                                   (s.get("boot_phases_ms") or {}).items())
                out.append(f"| {count} | {server} | {_f(s.get('boot_ms'))} | {phases} | "
                           f"{s['rps']:.0f} | {_f(s.get('rps_per_cpu'))} | {s['p50_ms']:.2f} | "
                           f"{s['p99_ms']:.2f} | {_f(s.get('other_cpu0_pct'))} | {s['errors']} |")
        out.append("")

    body = results.get("body", {})
    if body:
        out += ["## Large bodies", "", "`POST /bulk` with `{\"name\": ..., \"rows\": [[16 floats], "
                "...]}` typed `rows: list[list[float]]`; the handler returns `{\"rows\": N}` "
                "(checked). Latency from sending the request to the last byte of the answer, one "
                "connection, requests alternating between servers.", "",
                "| body | server | bytes | median ms | min ms | max ms | speed-up vs reference |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for label, by_server in body.items():
            ref = _get(by_server, "reference", "median_ms")
            for server, s in by_server.items():
                if "error" in s:
                    out.append(f"| {label} | {server} | | error: {s['error']} | | | |")
                    continue
                speedup = _ratio(ref, s["median_ms"])
                out.append(f"| {label} | {server} | {s['bytes']} | {s['median_ms']:.1f} | "
                           f"{s['min_ms']:.1f} | {s['max_ms']:.1f} | {_x(speedup)} |")
        out.append("")

    busy = results.get("busy", {})
    if busy:
        out += ["## /ping while the thread pool is full", "",
                "`GET /ping` (wrk, 4 connections) while 240 blocking `def` requests (`time.sleep(2)`) are "
                "kept in flight: 40 hold the pool's threads, the rest wait for one.", "",
                "| server | /ping req/s | p50 ms | p99 ms | max ms | errors | sleeping requests done |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for server, s_ in busy.items():
            if not s_["requests"]:  # every /ping waited behind the sleeping requests
                out.append(f"| {server} | 0 (no answer during the run) | – | – | – | {s_['errors']} | "
                           f"{s_['sleeping_ok']} |")
                continue
            out.append(f"| {server} | {s_['rps']:.0f} | {s_['p50_ms']:.2f} | {s_['p99_ms']:.2f} | "
                       f"{s_['max_ms']:.1f} | {s_['errors']} | {s_['sleeping_ok']} |")
        out.append("")

    failures = results.get("failures", {})
    if failures:
        out += ["## Not measured", ""]
        for server, error in failures.items():
            first = error.strip().splitlines()[0] if error.strip() else "failed"
            out.append(f"- `{server}`: {first}")
        out.append("")

    out += ["![chart](chart.png)", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- chart

def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(20, 9))
    load = results.get("load", {})
    apps = ("reference", "runtime", "runtime-uvicorn")

    def grouped(ax, groups: list[str], series: dict, title: str, unit: str, log=False):
        names = [n for n in series if any(series[n].get(g) for g in groups)]
        width = 0.8 / max(1, len(names))
        for j, name in enumerate(names):
            xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(groups))]
            ys = [series[name].get(g) or 0 for g in groups]
            ax.bar(xs, ys, width, label=name, color=COLORS.get(name, "#888"))
            for x, y in zip(xs, ys):
                if y:
                    ax.annotate(f"{y:.0f}" if y >= 10 else f"{y:.2f}", (x, y), ha="center",
                                va="bottom", fontsize=6)
        ax.set_xticks(range(len(groups)), groups, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        if log:
            ax.set_yscale("log")
        if names:
            ax.legend(fontsize=7)

    scen = [("post_c1", "POST c1"), ("post_c16", "POST c16"), ("post_c64", "POST c64"),
            ("ping_c64", "GET /ping c64")]
    grouped(axes[0][0], [t for _, t in scen],
            {s: {t: _get(load, k, s, "rps") for k, t in scen} for s in apps},
            "Throughput (req/s, median of rounds)", "req/s")
    grouped(axes[0][1], [t for _, t in scen],
            {s: {t: _get(load, k, s, "rps_per_cpu") for k, t in scen} for s in apps},
            "Requests per second of server CPU", "req / CPU-s")
    floors = ("reference", "runtime", "raw-hypercorn", "runtime-uvicorn", "raw-uvicorn")
    grouped(axes[0][2], ["req/s", "req per CPU-s"],
            {s: {"req/s": _get(load, "post_c64", s, "rps"),
                 "req per CPU-s": _get(load, "post_c64", s, "rps_per_cpu")} for s in floors},
            "No-op POST c64 against the raw-ASGI floors", "")
    grouped(axes[0][3], ["c1 p50", "c1 p99", "c64 p50", "c64 p99"],
            {s: {"c1 p50": _get(load, "post_c1", s, "p50_ms"),
                 "c1 p99": _get(load, "post_c1", s, "p99_ms"),
                 "c64 p50": _get(load, "post_c64", s, "p50_ms"),
                 "c64 p99": _get(load, "post_c64", s, "p99_ms")} for s in apps},
            "No-op POST latency (ms)", "ms", log=True)
    cold, memory = results.get("cold_start", {}), results.get("memory", {})
    grouped(axes[1][0], ["first answer", "first 200"],
            {s: {"first answer": _get(cold, s, "first_answer_ms"),
                 "first 200": _get(cold, s, "first_200_ms")} for s in apps},
            "Cold start: exec -> /ping (ms, median)", "ms")
    grouped(axes[1][1], ["idle", "after load"],
            {s: {"idle": _get(memory, s, "idle_rss_mb"),
                 "after load": _get(memory, s, "loaded_rss_mb")} for s in apps},
            "RSS (MB)", "MB")
    routes = results.get("routes", {})
    counts = list(routes)
    route_servers = [s for s in apps if any(s in v and "error" not in v[s] for v in routes.values())]
    ax = axes[1][2]
    for s in route_servers:
        xs = [int(c) for c in counts if "rps" in routes[c].get(s, {})]
        ax.plot(xs, [routes[str(c)][s]["rps"] for c in xs], "o-", color=COLORS.get(s),
                label=f"{s} req/s")
    ax.set_xscale("log")
    ax.set_xlabel("routes in manifest")
    ax.set_ylabel("req/s (c64, last route)")
    ax.set_title("Route table size: req/s (solid), boot ms (dashed)", fontsize=10)
    twin = ax.twinx()
    for s in route_servers:
        xs = [int(c) for c in counts if routes[c].get(s, {}).get("boot_ms")]
        twin.plot(xs, [routes[str(c)][s]["boot_ms"] for c in xs], "s--", color=COLORS.get(s),
                  alpha=0.6, label=f"{s} boot ms")
    twin.set_ylabel("boot ms")
    if route_servers:
        ax.legend(fontsize=7, loc="lower left")
    body = results.get("body", {})
    grouped(axes[1][3], list(body),
            {s: {label: _get(body, label, s, "median_ms") for label in body} for s in apps},
            "Large typed JSON body: request latency (ms)", "ms", log=True)
    env = results.get("environment", {})
    fig.suptitle(f"Flash runtime vs reference - {env.get('cpu')}, {env.get('date')} "
                 f"(profile {results.get('profile', {}).get('name')})", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
