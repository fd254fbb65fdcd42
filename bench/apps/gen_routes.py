"""Generate a Flash app with N load-balanced routes: `gen_routes.py N OUT_DIR`.

Writes `routes_app.py` (N no-op handlers like `bench_app.noop`) and a `flash_manifest.json` in
Flash's format into OUT_DIR. `last_route(n)` is the route the benchmark loads: the last one
registered, the worst case for a router that scans its table in order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODULE = "routes_app"
RESOURCE = "bench_routes"


def route_name(i: int) -> str:
    return f"noop_{i:04d}"


def route_path(i: int) -> str:
    return f"/api/v1/group{i // 10:03d}/item{i:04d}"


def last_route(n: int) -> str:
    return route_path(n - 1)


def generate(n: int, out_dir: Path) -> Path:
    """Write the app and its manifest into out_dir; return out_dir."""
    if n < 1:
        raise ValueError("n must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    source = ['"""Generated: %d no-op load-balanced routes."""\n' % n]
    functions = []
    for i in range(n):
        name = route_name(i)
        source.append(
            f"\n\nasync def {name}(value: int, label: str = \"\") -> dict:\n"
            f"    return {{\"value\": value}}\n"
        )
        functions.append(
            {
                "name": name,
                "module": MODULE,
                "is_async": True,
                "is_class": False,
                "http_method": "POST",
                "http_path": route_path(i),
            }
        )
    (out_dir / f"{MODULE}.py").write_text("".join(source))
    manifest = {
        "version": "1.0",
        "project_name": f"bench-routes-{n}",
        "resources": {
            RESOURCE: {
                "resource_type": "CpuLoadBalancerSlsResource",
                "file_path": f"{MODULE}.py",
                "module_path": MODULE,
                "functions": functions,
                "is_load_balanced": True,
                "is_live_resource": False,
            }
        },
        "function_registry": {f["name"]: RESOURCE for f in functions},
        "routes": {RESOURCE: {f"POST {f['http_path']}": f["name"] for f in functions}},
    }
    (out_dir / "flash_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: gen_routes.py N OUT_DIR")
    print(generate(int(sys.argv[1]), Path(sys.argv[2])))
