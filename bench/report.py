"""Turn bench/run.py's results into the targets, a Markdown report and a chart."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = (
    "runpod-flash",
    "fastapi",
    "pydantic",
    "pydantic-core",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "hypercorn",
    "h11",
    "msgspec",
    "orjson",
    "structlog",
)
SERVER_NOTES = {
    "reference": "runpod_flash `create_lb_handler` (FastAPI) on uvicorn, "
    "`uvicorn handler:app --timeout-keep-alive 600`, access log on",
    "runtime": "`entrypoint.py` (Starlette + msgspec on Hypercorn), access log on",
    "runtime-uvicorn": "`entrypoint.py` with `FLASH_SERVER=uvicorn`",
    "raw-hypercorn": "do-nothing ASGI app on Hypercorn (the floor under `runtime`)",
    "raw-uvicorn": "do-nothing ASGI app on uvicorn (the floor under `runtime-uvicorn`)",
}


# --------------------------------------------------------------------------- environment


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(python: str) -> dict:
    """Date, machine, Python and package versions of the measured environment."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _run(["lscpu"]).splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        f"for name in {PACKAGES!r}:\n"
        "    try: out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError: out[name] = None\n"
        "print(json.dumps({'python': sys.version.split()[0], 'packages': out}))"
    )
    versions = json.loads(_run([python, "-c", code]) or '{"python": null, "packages": {}}')
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": versions["python"],
        "packages": versions["packages"],
        "wrk": " ".join(_run(["wrk", "-v"]).split()[:2]) or None,
        "commit": _run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"]
        )
        or None,
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
        rows.append(
            {
                "target": name,
                "value": value,
                "per_cpu": per_cpu,
                "op": op,
                "bound": bound,
                "status": "n/a" if ok is None else ("pass" if ok else "FAIL"),
                "detail": detail,
            }
        )

    def rps_ratio(a_keys, b_keys):
        return (
            _ratio(_get(load, *a_keys, "rps"), _get(load, *b_keys, "rps")),
            _ratio(_get(load, *a_keys, "rps_per_cpu"), _get(load, *b_keys, "rps_per_cpu")),
        )

    for server, floor in (("runtime", "raw-hypercorn"), ("runtime-uvicorn", "raw-uvicorn")):
        value, per_cpu = rps_ratio(("post_c64", server), ("post_c64", floor))
        add(
            f"{server} c64 req/s / {floor} c64 req/s",
            value,
            ">=",
            0.85,
            "no-op JSON POST, 64 connections",
            per_cpu,
        )
    value, per_cpu = rps_ratio(("post_c64", "runtime-uvicorn"), ("post_c64", "reference"))
    add(
        "runtime-uvicorn c64 req/s / reference c64 req/s",
        value,
        ">=",
        3.0,
        "no-op JSON POST",
        per_cpu,
    )
    add(
        "runtime-uvicorn c1 p50 / reference c1 p50",
        _ratio(
            _get(load, "post_c1", "runtime-uvicorn", "p50_ms"),
            _get(load, "post_c1", "reference", "p50_ms"),
        ),
        "<=",
        0.4,
        "no-op JSON POST",
    )
    add(
        "runtime cold start to first 200 / reference",
        _ratio(
            _get(results, "cold_start", "runtime", "first_200_ms"),
            _get(results, "cold_start", "reference", "first_200_ms"),
        ),
        "<=",
        0.5,
        "exec -> first 200 on /ping, median",
    )
    add(
        "runtime idle RSS / reference idle RSS",
        _ratio(
            _get(results, "memory", "runtime", "idle_rss_mb"),
            _get(results, "memory", "reference", "idle_rss_mb"),
        ),
        "<=",
        0.7,
        "after boot",
    )
    add(
        "runtime boot, 1000 routes / 1 route",
        _ratio(_get(routes, "1000", "runtime", "boot_ms"), _get(routes, "1", "runtime", "boot_ms")),
        "<=",
        2.0,
        "exec -> first 200",
    )
    add(
        "runtime req/s, 1000 routes / 1 route",
        _ratio(_get(routes, "1000", "runtime", "rps"), _get(routes, "1", "runtime", "rps")),
        ">=",
        0.9,
        "c64 on the last route",
        _ratio(
            _get(routes, "1000", "runtime", "rps_per_cpu"),
            _get(routes, "1", "runtime", "rps_per_cpu"),
        ),
    )
    add(
        "30 MB body: reference latency / runtime latency",
        _ratio(
            _get(results, "body", "30 MB", "reference", "median_ms"),
            _get(results, "body", "30 MB", "runtime", "median_ms"),
        ),
        ">=",
        3.0,
        "request -> validated args -> tiny answer",
    )
    return rows


REALAPP_PATHS = (  # (row, label); `fill` is the cached row's first boot
    ("artifact", "real app: archive on disk -> first 200"),
    ("unlinked", "real app: archive on disk, FLASH_LINK_APP_VENV=0 -> first 200"),
    ("unpacked", "real app: unpacked tree -> first 200"),
    ("cached", "real app: second boot with a persistent cache -> first 200"),
    ("fill", "real app: first boot, filling the cache -> first 200"),
)


# Rows whose reference figure is its archive row's, and why.
_SAME_AS_ARCHIVE = {
    "unlinked": " = archive row",
    "cached": " = archive row (no cache)",
    "fill": " = archive row (no cache)",
}


def _span(s: dict | None) -> str:
    if not s:
        return "–"
    return f"{s['first_200_ms']:.0f} ({s['min_ms']:.0f}-{s['max_ms']:.0f})"


def _phases(phases: dict | None) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in (phases or {}).items() if v >= 1) or "–"


def _trivial(cold: dict, server: str) -> dict | None:
    s = cold.get(server)
    if not s:
        return None
    runs = [r["first_200_ms"] for r in s["runs"]]
    return {"first_200_ms": s["first_200_ms"], "min_ms": min(runs), "max_ms": max(runs)}


def cold_start_table(results: dict) -> str:
    """Exec -> first 200 of the trivial app and of the real app's paths, reference beside runtime:
    median (range) in ms, the ratio, and the boot phases (medians)."""
    rows_out = [
        "| path | reference ms, median (range) | runtime ms, median (range) | runtime / "
        "reference | runtime boot phases ms | reference boot phases ms |",
        "|---|---:|---:|---:|---|---|",
    ]
    cold = results.get("cold_start") or {}
    if cold:
        ref, run = _trivial(cold, "reference"), _trivial(cold, "runtime")
        ratio = _ratio(_get(run or {}, "first_200_ms"), _get(ref or {}, "first_200_ms"))
        rows_out.append(
            f"| trivial app (bench/apps/noop) -> first 200 | {_span(ref)} | {_span(run)} | "
            f"{_f(ratio, '.2f')} | – | – |"
        )
    real = (results.get("realapp") or {}).get("rows") or {}
    for row, label in REALAPP_PATHS:
        if row == "fill":
            run = _get(real, "cached", "runtime", "fill")
            ref = _get(real, "artifact", "reference")
        else:
            run, ref = _get(real, row, "runtime"), _get(real, row, "reference")
        if run is None and ref is None:
            continue
        ref_text = _span(ref) + (_SAME_AS_ARCHIVE.get(row, "") if ref else "")
        ratio = _ratio(_get(run or {}, "first_200_ms"), _get(ref or {}, "first_200_ms"))
        ref_phases = "–" if row in _SAME_AS_ARCHIVE else _phases(_get(ref or {}, "phases_ms"))
        rows_out.append(
            f"| {label} | {ref_text} | {_span(run)} | {_f(ratio, '.2f')} | "
            f"{_phases(_get(run or {}, 'phases_ms'))} | {ref_phases} |"
        )
    return "\n".join(rows_out)


def _store_text(results: dict) -> str:
    """Whether the runtime's real-app boots had the images' bytecode store."""
    store = (results.get("realapp") or {}).get("bytecode_store")
    if store is None:  # results from before the store existed
        return ""
    if not store:
        return "The runtime boots without a bytecode store or app venv (`--no-bytecode-store`). "
    return (
        "The runtime boots with the image's app venv and bytecode store (`FLASH_APP_VENV`, "
        "`FLASH_BYTECODE_STORE`: the images' APP_PACKAGES pip-installed and compiled by "
        "`python -m runtime.bytecode build`, as the images do, `bench/apps/image_bytecode.py`); "
        "the reference has nothing like the store. "
    )


def realapp_notes(results: dict) -> list[str]:
    """The build measured, the runtime's slowest imports per path, whether the cache was used."""
    section = results.get("realapp") or {}
    build, real = section.get("build") or {}, section.get("rows") or {}
    out = []
    if build:
        out.append(
            f"- App: `{build.get('app')}` ({', '.join(build.get('sources', []))}), resource "
            f"`{build.get('resource')}`, built by `flash build --python-version "
            f"{build.get('target_python')}` (runpod-flash {build.get('runpod_flash_builder')}): "
            f"{build.get('artifact_bytes', 0) / 2**20:.1f} MB archive, {build.get('members')} "
            f"members, {build.get('files')} files, {build.get('unpacked_bytes', 0) / 2**20:.0f} MB "
            f"unpacked; {section.get('runs')} boots per path and server, alternating."
        )
    for row, label in REALAPP_PATHS:
        node = (
            _get(real, "cached", "runtime", "fill") if row == "fill" else _get(real, row, "runtime")
        )
        slow = (node or {}).get("slowest_imports_ms")
        if slow:
            out.append(
                f"- Runtime's slowest imports (own time, ms, median boot), {label.split(': ', 1)[1]}: "
                + ", ".join(f"`{k}` {v:.0f}" for k, v in slow.items())
            )
    boots = _get(real, "artifact", "runtime", "runs") or []
    links = [b.get("app_venv_links") for b in boots]
    if any(links):
        first = next(link for link in links if link)
        out.append(
            f"- The runtime's archive boots took {first['linked_dirs']} folders "
            f"({first['linked_files']} files) from the app venv as links and copied "
            f"{first['copied_files']} files from it (FLASH_LINK_APP_VENV), of "
            f"{build.get('files', '?')} files in the archive."
        )
    files = _get(real, "cached", "runtime", "cache_files")
    if files is not None:
        out.append(
            "- Files in FLASH_CACHE_DIR after the first boot: "
            + ", ".join(map(str, files))
            + (" (the runtime wrote no cache: this row shows no gain)" if not any(files) else "")
        )
    for key, error in (section.get("failures") or {}).items():
        first = error.strip().splitlines()[0] if error.strip() else "failed"
        out.append(f"- `{key}` not measured: {first}")
    return out


def targets_table(rows: list[dict]) -> str:
    lines = [
        "| target | measured | per server CPU-s | bound | result |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['target']} ({row['detail']}) | {_f(row['value'], '.2f', 'n/a')} | "
            f"{_f(row.get('per_cpu'), '.2f')} | {row['op']} {row['bound']:g} | "
            f"{row['status']} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- markdown


def _f(value, fmt=".0f", none="–"):
    return none if value is None else format(value, fmt)


def _x(value) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _measured(results: dict, section: str) -> str:
    """`Measured <date> (<profile>). ` when the section comes from another run than the header's."""
    stamp = (results.get("measured") or {}).get(section)
    env = results.get("environment", {})
    if not stamp or stamp.get("date") == env.get("date"):
        return ""
    return f"Measured {stamp.get('date')} (profile `{stamp.get('profile')}`, commit {stamp.get('commit')}). "


def _runs(results: dict, section: str, field: str):
    """A profile count (`cold_runs`, ...) of the run that measured `section`."""
    stamp = (results.get("measured") or {}).get(section) or {}
    return (stamp.get("counts") or results.get("profile") or {}).get(field)


def _loadavg(results: dict) -> str:
    la = results.get("loadavg") or {}

    def fmt(v):
        return "/".join(f"{x:.1f}" for x in v) if v else "?"

    return f"{fmt(la.get('before'))} (1/5/15 min) before, {fmt(la.get('after'))} after"


def markdown(results: dict) -> str:
    env = results.get("environment", {})
    prof = results.get("profile", {})
    out = ["# Benchmark: the runtime against the reference", ""]
    out += [
        f"- Date: {env.get('date')}; elapsed {results.get('elapsed_s', 0):.0f} s "
        f"(profile `{prof.get('name')}`)",
        f"- Machine: {env.get('cpu')}, {env.get('cpus')} CPUs, Linux {env.get('kernel')}; "
        "servers pinned to CPU 0, wrk and the driver to CPU 1 (taskset)",
        f"- Python {env.get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v),
        f"- Load generator: {env.get('wrk')}, one thread",
        f"- Project commit: {env.get('commit') or 'uncommitted'}",
        f"- Rounds: {_runs(results, 'load', 'rounds')} x {_runs(results, 'load', 'duration')} s "
        "per load cell, servers "
        "alternating (each round starts with the next server); figures are medians over "
        "rounds.",
        f"- Other load: load average {_loadavg(results)}; a load run during which other "
        "processes took more than 15% of CPU 0 was repeated (within a time budget) and the "
        f"least disturbed attempt kept ({results.get('retries', 0)} repeats). "
        "`req per server CPU-s` (requests / CPU seconds the server used) is the cost per "
        "request whatever CPU share the server got; compare it when `others on CPU 0 %` is "
        "high.",
        "- Raw floors on the event loop their runtime variant uses: "
        + (", ".join(f"`{k}` {v}" for k, v in (results.get("floor_loop") or {}).items()) or "n/a"),
    ]
    kept = sorted(
        {k for k, v in (results.get("measured") or {}).items() if v.get("date") != env.get("date")}
    )
    if kept:
        out.append(
            f"- Kept from earlier runs (`--merge`): {', '.join(kept)}; each section gives its "
            "date, profile and commit."
        )
    out.append("")
    out += ["Servers:", ""] + [
        f"- `{k}`: {v}"
        for k, v in SERVER_NOTES.items()
        if k in results.get("servers", []) or k in results.get("failures", {})
    ]
    out += ["", "## Targets", "", targets_table(results.get("targets", [])), ""]

    load = results.get("load", {})
    if load:
        out += [
            "## Throughput and latency",
            "",
            _measured(results, "load")
            + "No-op JSON POST (`{\"value\": 1, \"label\": \"bench\"}` -> `{\"value\": 1}`, both "
            "arguments validated) and `GET /ping`. The raw floors answer the same POST "
            "without an app.",
            "",
            "| scenario | server | req/s | p50 ms | p99 ms | vs reference | req per server "
            "CPU-s | vs reference | server CPU % | others on CPU 0 % | errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key, title in (
            ("post_c1", "POST c1"),
            ("post_c16", "POST c16"),
            ("post_c64", "POST c64"),
            ("ping_c64", "GET /ping c64"),
        ):
            ref = _get(load, key, "reference", "rps")
            ref_cpu = _get(load, key, "reference", "rps_per_cpu")
            for server, s in load.get(key, {}).items():
                out.append(
                    f"| {title} | {server} | {s['rps']:.0f} | {s['p50_ms']:.2f} | "
                    f"{s['p99_ms']:.2f} | {_x(_ratio(s['rps'], ref))} | "
                    f"{_f(s.get('rps_per_cpu'))} | "
                    f"{_x(_ratio(s.get('rps_per_cpu'), ref_cpu))} | "
                    f"{_f(s.get('server_cpu_pct'))} | {_f(s.get('other_cpu0_pct'))} | "
                    f"{s['errors']} |"
                )
        out.append("")

    cold = results.get("cold_start", {})
    if cold:
        out += [
            "## Cold start",
            "",
            _measured(results, "cold_start")
            + "Process exec -> first answer on `/ping` (any status) and -> first 200, "
            f"median of {_runs(results, 'cold_start', 'cold_runs')} (one unmeasured boot first), "
            "on the trivial app `bench/apps/noop`.",
            "",
            "| server | first answer ms | first 200 ms | runs (first 200 ms) |",
            "|---|---:|---:|---|",
        ]
        for server, s in cold.items():
            runs = ", ".join(f"{r['first_200_ms']:.0f}" for r in s["runs"])
            out.append(
                f"| {server} | {s['first_answer_ms']:.0f} | {s['first_200_ms']:.0f} | {runs} |"
            )
        out.append("")

    if (results.get("realapp") or {}).get("rows") or (results.get("realapp") or {}).get("failures"):
        out += (
            [
                "## Cold start of a real app",
                "",
                _measured(results, "realapp")
                + "`bench/apps/lb_example` (two load-balanced resources importing runpod_flash, the shape "
                "of flash-examples' load-balancer example) as `flash build` ships it, "
                "each boot into a fresh app folder. Archive on disk: the reference extracts it with "
                "`tarfile` into its app folder and imports the generated handler, as "
                "worker-flash-lb's `lb_handler` does (`bench/apps/reference_unpack.py`); the runtime "
                "gets `FLASH_ARTIFACT_PATH` and an empty `FLASH_MODULE_PATH` and links the "
                "folders its app venv holds byte for byte; `FLASH_LINK_APP_VENV=0`: the same with "
                "every member written (the reference's figure is its archive row's). Unpacked tree: both "
                "start on a fresh copy of the unpacked archive (the reference on "
                "`bench/reference.py`'s generated handler). Persistent cache: the runtime boots "
                "twice from the archive with `FLASH_CACHE_DIR` on one fresh folder, the second boot "
                "counts; the reference has no cache, so its figure is the archive row's. "
                + _store_text(results)
                + "Phases: "
                "the runtime's `boot` line; the reference's are timed inside its handler module "
                "(the rest of its boot is the interpreter and uvicorn). `/ping` is polled every "
                "50 ms during these boots (2 ms for the trivial app).",
                "",
                cold_start_table(results),
                "",
            ]
            + realapp_notes(results)
            + [""]
        )

    memory = results.get("memory", {})
    if memory:
        out += [
            "## Memory",
            "",
            _measured(results, "memory")
            + "RSS of the server process (and children), idle after boot and "
            "after the no-op POSTs (c64).",
            "",
            "| server | idle RSS MB | requests | RSS after MB |",
            "|---|---:|---:|---:|",
        ]
        for server, s in memory.items():
            out.append(
                f"| {server} | {s['idle_rss_mb']:.1f} | {s.get('requests', 0)} | "
                f"{_f(s.get('loaded_rss_mb'), '.1f')} |"
            )
        out.append("")

    routes = results.get("routes", {})
    if routes:
        out += [
            "## Routes",
            "",
            _measured(results, "routes")
            + "Generated manifests of N no-op POST routes; boot = exec -> first "
            f"200 (median of {_runs(results, 'routes', 'boot_runs')}); throughput = c64 on the last route "
            "registered. Route counts alternate like the servers: boot and load rounds rotate "
            "through every (count, server) pair, so the 1000/1 ratios compare the same moments.",
            "",
            "| routes | server | boot ms | runtime boot phases ms | req/s | req per server "
            "CPU-s | p50 ms | p99 ms | others on CPU 0 % | errors |",
            "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for count, by_server in routes.items():
            for server, s in by_server.items():
                if "error" in s:
                    out.append(f"| {count} | {server} | error | | | | | | | |")
                    continue
                phases = ", ".join(
                    f"{k} {v:.0f}" for k, v in (s.get("boot_phases_ms") or {}).items()
                )
                out.append(
                    f"| {count} | {server} | {_f(s.get('boot_ms'))} | {phases} | "
                    f"{s['rps']:.0f} | {_f(s.get('rps_per_cpu'))} | {s['p50_ms']:.2f} | "
                    f"{s['p99_ms']:.2f} | {_f(s.get('other_cpu0_pct'))} | {s['errors']} |"
                )
        out.append("")

    body = results.get("body", {})
    if body:
        out += [
            "## Large bodies",
            "",
            _measured(results, "body")
            + "`POST /bulk` with `{\"name\": ..., \"rows\": [[16 floats], "
            "...]}` typed `rows: list[list[float]]`; the handler returns `{\"rows\": N}` "
            "(checked). Latency from sending the request to the last byte of the answer, one "
            "connection, requests alternating between servers.",
            "",
            "| body | server | bytes | median ms | min ms | max ms | speed-up vs reference |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for label, by_server in body.items():
            ref = _get(by_server, "reference", "median_ms")
            for server, s in by_server.items():
                if "error" in s:
                    out.append(f"| {label} | {server} | | error: {s['error']} | | | |")
                    continue
                speedup = _ratio(ref, s["median_ms"])
                out.append(
                    f"| {label} | {server} | {s['bytes']} | {s['median_ms']:.1f} | "
                    f"{s['min_ms']:.1f} | {s['max_ms']:.1f} | {_x(speedup)} |"
                )
        out.append("")

    busy = results.get("busy", {})
    if busy:
        out += [
            "## /ping while the thread pool is full",
            "",
            _measured(results, "busy")
            + "`GET /ping` (wrk, 4 connections) while 240 blocking `def` requests (`time.sleep(2)`) are "
            "kept in flight: 40 hold the pool's threads, the rest wait for one.",
            "",
            "| server | /ping req/s | p50 ms | p99 ms | max ms | errors | sleeping requests done |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for server, s_ in busy.items():
            if not s_["requests"]:  # every /ping waited behind the sleeping requests
                out.append(
                    f"| {server} | 0 (no answer during the run) | – | – | – | {s_['errors']} | "
                    f"{s_['sleeping_ok']} |"
                )
                continue
            out.append(
                f"| {server} | {s_['rps']:.0f} | {s_['p50_ms']:.2f} | {s_['p99_ms']:.2f} | "
                f"{s_['max_ms']:.1f} | {s_['errors']} | {s_['sleeping_ok']} |"
            )
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

# The chart's servers, the default first; each panel answers one question.
CHART_SERVERS = ("runtime", "runtime-uvicorn", "reference")
CHART_LABELS = {
    "runtime": "runtime, Hypercorn (default)",
    "runtime-uvicorn": "runtime, uvicorn (optional)",
    "reference": "reference: FastAPI on uvicorn",
    "raw-hypercorn": "bare Hypercorn",
    "raw-uvicorn": "bare uvicorn",
}
COLORS = {
    "runtime": "#1f5fa8",
    "runtime-uvicorn": "#7fb2e5",
    "reference": "#c0504d",
    "raw-hypercorn": "#9a9a9a",
    "raw-uvicorn": "#c8c8c8",
}


def _bars(
    ax,
    rows: list[tuple[str, float | None, str]],
    title: str,
    unit: str,
    target: float | None = None,
    room: float = 1.5,
) -> None:
    """Horizontal bars, one a server (the first on top), each labelled with its value."""
    from matplotlib.ticker import MaxNLocator

    names = [name for name, _, _ in rows]
    values = [value or 0 for _, value, _ in rows]
    ys = range(len(rows))
    ax.barh(ys, values, height=0.62, color=[COLORS.get(n, "#888") for n in names])
    ax.set_yticks(ys, [CHART_LABELS.get(n, n) for n in names], fontsize=12)
    ax.invert_yaxis()
    top = max(values + [target or 0]) or 1
    ax.set_xlim(0, top * room)  # room for the value beside the longest bar
    ax.xaxis.set_major_locator(MaxNLocator(5))
    for y, (_, value, text) in zip(ys, rows, strict=False):
        ax.text((value or 0) + top * 0.015, y, text, va="center", fontsize=12)
    if target is not None:
        ax.axvline(target, color="#333", linestyle="--", linewidth=1.2)
        ax.text(target, 0.5, f" target {target:g}", fontsize=11, va="center")
    ax.set_title(title, fontsize=14, fontweight="bold", loc="left", pad=10)
    ax.set_xlabel(unit, fontsize=12)
    ax.tick_params(axis="x", labelsize=11)
    ax.spines[["top", "right"]].set_visible(False)


def _realapp_panel(ax, results: dict) -> None:
    """Exec -> first 200 of the trivial and the real app, reference and runtime side by side."""
    real = (results.get("realapp") or {}).get("rows") or {}
    cold = results.get("cold_start") or {}
    groups = [
        (
            "trivial app",
            _get(cold, "reference", "first_200_ms"),
            _get(cold, "runtime", "first_200_ms"),
        ),
        (
            "real app,\nfrom the archive",
            _get(real, "artifact", "reference", "first_200_ms"),
            _get(real, "artifact", "runtime", "first_200_ms"),
        ),
        (
            "real app,\nunpacked tree",
            _get(real, "unpacked", "reference", "first_200_ms"),
            _get(real, "unpacked", "runtime", "first_200_ms"),
        ),
        (
            "real app, 2nd boot,\npersistent cache",
            _get(real, "cached", "reference", "first_200_ms"),
            _get(real, "cached", "runtime", "first_200_ms"),
        ),
    ]
    groups = [g for g in groups if g[1] is not None or g[2] is not None]
    top = max([v for g in groups for v in g[1:] if v] or [1])
    for i, (_label, ref, run) in enumerate(groups):
        for offset, server, value in ((-0.2, "reference", ref), (0.2, "runtime", run)):
            if value is None:
                continue
            ax.barh(
                i + offset,
                value / 1000,
                height=0.38,
                color=COLORS[server],
                label=CHART_LABELS[server] if i == 0 else None,
            )
            ax.text(
                value / 1000 + top / 1000 * 0.015,
                i + offset,
                f"{value / 1000:.2f} s",
                va="center",
                fontsize=11,
            )
    ax.set_yticks(range(len(groups)), [g[0] for g in groups], fontsize=11)
    ax.invert_yaxis()
    ax.set_xlim(0, top / 1000 * 1.3)
    ax.set_title(
        "Cold start: exec to the first 200 (median)",
        fontsize=14,
        fontweight="bold",
        loc="left",
        pad=10,
    )
    ax.set_xlabel("seconds (lower is better)", fontsize=12)
    if groups:
        ax.legend(fontsize=11, loc="upper right")
    ax.spines[["top", "right"]].set_visible(False)


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load, cold, memory = (
        results.get("load", {}),
        results.get("cold_start", {}),
        results.get("memory", {}),
    )
    body, busy, routes = results.get("body", {}), results.get("busy", {}), results.get("routes", {})
    fig, axes = plt.subplots(5, 2, figsize=(16, 23.5))
    panels = iter(axes.flat)

    def per_server(value, text):
        return [(s, value(s), text(value(s), s)) for s in CHART_SERVERS]

    rps = lambda s: _get(load, "post_c64", s, "rps")  # noqa: E731
    _bars(
        next(panels),
        per_server(rps, lambda v, s: _f(v)),
        "Throughput: no-op JSON POST, 64 connections",
        "requests per second (higher is better)",
    )
    p50 = lambda s: _get(load, "post_c1", s, "p50_ms")  # noqa: E731
    _bars(
        next(panels),
        per_server(
            p50,
            lambda v, s: (
                f"{_f(v, '.3f')} ms  (p99 {_f(_get(load, 'post_c1', s, 'p99_ms'), '.2f')})"
            ),
        ),
        "Latency: one request at a time (p50)",
        "milliseconds (lower is better)",
    )
    boot = lambda s: _get(cold, s, "first_200_ms")  # noqa: E731
    _bars(
        next(panels),
        per_server(boot, lambda v, s: f"{_f(v)} ms"),
        "Cold start: exec to the first /ping 200",
        "milliseconds (lower is better)",
    )
    rss = lambda s: _get(memory, s, "idle_rss_mb")  # noqa: E731
    _bars(
        next(panels),
        per_server(rss, lambda v, s: f"{_f(v, '.1f')} MB"),
        "Memory of an idle worker (RSS)",
        "MB (lower is better)",
    )
    big = next((label for label in ("30 MB", *body) if label in body), None)
    big_ms = lambda s: _get(body, big, s, "median_ms") if big else None  # noqa: E731
    _bars(
        next(panels),
        per_server(big_ms, lambda v, s: f"{_f(v)} ms"),
        f"A {big or ''} JSON body to validated arguments",
        "milliseconds, median (lower is better)",
    )
    ping = lambda s: _get(busy, s, "rps")  # noqa: E731
    _bars(
        next(panels),
        per_server(
            ping,
            lambda v, s: (
                "no answer"
                if not v
                else f"{_f(v)} req/s (p99 {_f(_get(busy, s, 'p99_ms'), '.1f')} ms)"
            ),
        ),
        "/ping while 240 blocking requests are in flight",
        "requests per second (higher is better)",
        room=1.9,
    )
    floors = [
        (s, _ratio(_get(load, "post_c64", s, "rps"), _get(load, "post_c64", floor, "rps")), floor)
        for s, floor in (("runtime", "raw-hypercorn"), ("runtime-uvicorn", "raw-uvicorn"))
    ]
    _bars(
        next(panels),
        [(s, v, f"{_f(v, '.2f')} of {CHART_LABELS[floor]}") for s, v, floor in floors],
        "Share of the bare server's throughput (c64)",
        "runtime req/s / bare server req/s",
        target=0.85,
    )

    ax = next(panels)
    counts = sorted(routes, key=int)
    for s in CHART_SERVERS:
        points = [(c, _get(routes, c, s, "rps")) for c in counts]
        points = [(c, v) for c, v in points if v]
        if points:
            ax.plot(
                [counts.index(c) for c, _ in points],
                [v for _, v in points],
                "o-",
                linewidth=2.5,
                markersize=8,
                color=COLORS[s],
                label=CHART_LABELS[s],
            )
    ax.set_xticks(
        range(len(counts)), [f"{c} route{'s' if c != '1' else ''}" for c in counts], fontsize=12
    )
    ax.set_ylim(bottom=0)
    ax.set_title(
        "Throughput on the last of N routes (c64)",
        fontsize=14,
        fontweight="bold",
        loc="left",
        pad=10,
    )
    ax.set_ylabel("requests per second", fontsize=12)
    ax.tick_params(axis="y", labelsize=11)
    if ax.get_lines():
        ax.legend(fontsize=11, loc="lower left")
    ax.spines[["top", "right"]].set_visible(False)

    _realapp_panel(next(panels), results)
    next(panels).axis("off")

    env = results.get("environment", {})
    fig.suptitle(
        f"Flash worker runtime vs the reference: {env.get('cpu')}, {env.get('cpus')} CPUs, "
        f"Python {env.get('python')}, {env.get('date')}",
        fontsize=16,
        fontweight="bold",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98), h_pad=3.5, w_pad=4)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    # Redraw the chart (and results.md) from a results.json without running the benchmark again.
    import sys

    source = Path(
        sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "results.json"
    )
    saved = json.loads(source.read_text())
    source.with_name("results.md").write_text(markdown(saved))
    chart(saved, source.with_name("chart.png"))
    print(source.with_name("results.md"), source.with_name("chart.png"))
