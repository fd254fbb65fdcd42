"""Build the reference server for a Flash app, as the worker-flash-lb image runs it.

The reference is runpod_flash's `create_lb_handler` FastAPI app on uvicorn. `flash build`
generates a handler module (`app = create_lb_handler(ROUTE_REGISTRY, ...)` plus its `/ping`
route) with runpod_flash's own `LBHandlerGenerator`; this module calls that generator, so the
handler is exactly the shipped one, and lays it next to the app's sources as the image's `/app`
holds them. The image starts it with `uvicorn handler:app ... --timeout-keep-alive 600` and its
access log on (uvicorn's default).

    .venv/bin/python bench/reference.py APP_DIR OUT_DIR          # build, print the command
    .venv/bin/python bench/reference.py APP_DIR OUT_DIR --serve  # build and serve on PORT
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HANDLER_MODULE = "handler"


def load_balanced_resource(manifest: dict, name: str | None = None) -> str:
    """The resource the worker serves: `name`, or the only load-balanced one."""
    resources = manifest.get("resources", {})
    if name is not None:
        if name not in resources:
            raise SystemExit(f"resource {name!r} not in manifest (have {sorted(resources)})")
        return name
    candidates = [n for n, r in resources.items() if r.get("is_load_balanced")]
    if len(candidates) != 1:
        raise SystemExit(f"need exactly one load-balanced resource, found {candidates}")
    return candidates[0]


def build(
    app_dir: Path, out_dir: Path, manifest_path: Path | None = None, resource: str | None = None
) -> Path:
    """Copy the app into out_dir and generate `handler.py` there; return out_dir."""
    from runpod_flash.cli.commands.build_utils.lb_handler_generator import LBHandlerGenerator

    app_dir = Path(app_dir).resolve()
    manifest_path = Path(manifest_path or app_dir / "flash_manifest.json")
    manifest = json.loads(manifest_path.read_text())
    resource = load_balanced_resource(manifest, resource)
    only = {**manifest, "resources": {resource: manifest["resources"][resource]}}

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        app_dir, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    generated = LBHandlerGenerator(only, out_dir).generate_handlers()
    if len(generated) != 1:
        raise SystemExit(f"expected one generated handler, got {generated}")
    generated[0].replace(out_dir / f"{HANDLER_MODULE}.py")
    return out_dir


def command(port: int, host: str = "127.0.0.1", python: str = sys.executable) -> list[str]:
    """The image's server command, run with the build dir as the working directory."""
    return [
        python,
        "-m",
        "uvicorn",
        f"{HANDLER_MODULE}:app",
        "--host",
        host,
        "--port",
        str(port),
        "--timeout-keep-alive",
        "600",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--manifest", type=Path)
    parser.add_argument("--resource")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--serve", action="store_true", help="exec the server after building")
    args = parser.parse_args()
    out_dir = build(args.app_dir, args.out_dir, args.manifest, args.resource)
    argv = command(args.port)
    if args.serve:
        os.chdir(out_dir)
        os.execv(argv[0], argv)
    print(f"cd {out_dir} && {' '.join(argv)}")


if __name__ == "__main__":
    main()
