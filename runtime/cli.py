"""The command line: `flash-worker serve|check [PATH]`, and `python entrypoint.py [--check]` for the images.

Every flag is a name for an environment variable (`--port` is `PORT`, PATH is `FLASH_MODULE_PATH`
and `FLASH_MANIFEST_PATH`, ...): the command sets it and the settings are read from the
environment as in a container, so there is one way a worker is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

_STARTED = time.monotonic()
MANIFEST_NAME = "flash_manifest.json"

_DESCRIPTION = """\
Serve a Runpod Flash load-balanced app from its flash_manifest.json.

`serve PATH` serves the app in PATH (a project after `flash build`, or a build output);
`check PATH` loads every load-balanced resource of it without serving. With no command, the worker is configured by environment variables only (FLASH_MODULE_PATH,
PORT, HOST, ...; see README), as the container images start it.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="load the settings, the manifest and the handlers without serving; exit 1 on a startup error",
    )
    parser.add_argument(
        "--print-manifest-schema",
        action="store_true",
        help="print the JSON Schema of the manifest this runtime accepts, and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,check}")

    path_help = (
        f"the app folder: {MANIFEST_NAME} is read from PATH or PATH/.flash (where `flash build` "
        f"writes it), or PATH names the manifest file itself (default: the current directory)"
    )
    serve = commands.add_parser(
        "serve",
        help="serve the app in PATH (--reload: restart on a change)",
        description="Serve the Flash app in PATH over HTTP.",
        epilog="Other settings (LOG_FORMAT, FLASH_MAX_CONCURRENCY, ...) come from the environment; see README.",
    )
    serve.add_argument("path", nargs="?", metavar="PATH", help=path_help)
    serve.add_argument(
        "--resource",
        metavar="NAME",
        help="the manifest resource to serve (FLASH_RESOURCE_NAME; default: the only load-balanced one)",
    )
    serve.add_argument(
        "--port", type=int, metavar="N", help="port to listen on (PORT; default 8000)"
    )
    serve.add_argument(
        "--host",
        metavar="H",
        help="address to bind (HOST; default 127.0.0.1 here, 0.0.0.0 in the images)",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart the worker when a file of the app changes (needs the `reload` extra: watchfiles)",
    )

    check = commands.add_parser(
        "check",
        help="load every load-balanced resource without serving",
        description="Load the app in PATH as a worker would (manifest, imports, routes, startup hook "
        "imported but not run) for every load-balanced resource, or the one named; serve nothing. "
        "Exit status 0 when all load, 1 otherwise.",
    )
    check.add_argument("path", nargs="?", metavar="PATH", help=path_help)
    check.add_argument(
        "--resource", metavar="NAME", help="check only this resource (FLASH_RESOURCE_NAME)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from .logs import configure_logging, flush_buffered_lines, get_logger
    from .settings import ServerKind, Settings, SettingsError

    if args.print_manifest_schema:
        import json

        from .manifest import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.command is not None:
        try:
            os.environ.update(command_environment(args, os.environ))
        except AppNotFound as exc:
            configure_logging(fmt=os.environ.get("LOG_FORMAT", "json"))
            get_logger("runtime.boot").error("startup error", error=str(exc))
            return 2
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        configure_logging()
        get_logger("runtime.boot").error("startup error", error=str(exc))
        return 2
    configure_logging(settings.log_level, settings.log_format)

    if args.command == "serve" and args.reload:
        from .reload import serve_with_reload

        announce(settings)
        return serve_with_reload(settings)

    from .boot import check, check_all, log_startup_error, serve
    from .errors import StartupError
    from .loader import preload_runtime_modules

    try:
        preload_runtime_modules(
            with_uvicorn=settings.server is ServerKind.UVICORN, with_metrics=settings.metrics_served
        )
    except StartupError as exc:
        log_startup_error(exc)
        return 2
    if args.command == "check":
        return check_all(settings)
    if args.check:
        return check(settings)
    if args.command == "serve":
        announce(settings)
    if settings.server is ServerKind.UVICORN:
        _use_uvloop()
    status, boot_finished = asyncio.run(serve(settings, _STARTED))
    if not boot_finished:
        # The app was still importing in a thread when a signal arrived; do not wait for it.
        flush_buffered_lines()
        sys.stdout.flush()
        os._exit(status)
    return status


class AppNotFound(ValueError):
    """PATH holds no manifest where `flash build` leaves one."""


def find_manifest(path: Path) -> Path:
    """The manifest of the app at `path`: the file itself, PATH/flash_manifest.json or PATH/.flash/..."""
    if path.is_file():
        return path
    for candidate in (path / MANIFEST_NAME, path / ".flash" / MANIFEST_NAME):
        if candidate.is_file():
            return candidate
    if not path.exists():
        raise AppNotFound(f"{path}: no such file or directory")
    raise AppNotFound(
        f"no {MANIFEST_NAME} in {path} or {path / '.flash'}; run `flash build` there first"
    )


def app_folder(manifest: Path) -> Path:
    """Where the modules live: beside the manifest, or above `.flash/` for a `flash build` project."""
    folder = manifest.parent
    return folder.parent if folder.name == ".flash" else folder


def command_environment(
    args: argparse.Namespace, environ: dict[str, str] | os._Environ
) -> dict[str, str]:
    """The environment variables a command's PATH and flags stand for."""
    env: dict[str, str] = {}
    if args.path is not None or (
        "FLASH_MANIFEST_PATH" not in environ and "FLASH_MODULE_PATH" not in environ
    ):
        folder = Path(args.path or ".").resolve()
        if environ.get("FLASH_ARTIFACT_PATH") and not folder.is_file():
            env["FLASH_MODULE_PATH"] = str(
                folder
            )  # the manifest arrives with the archive, unpacked there
        else:
            manifest = find_manifest(folder)
            env["FLASH_MANIFEST_PATH"] = str(manifest)
            env["FLASH_MODULE_PATH"] = str(app_folder(manifest))
    if args.resource is not None:
        env["FLASH_RESOURCE_NAME"] = args.resource
    if args.command == "serve":
        if args.port is not None:
            env["PORT"] = str(args.port)
        if args.host is not None:
            env["HOST"] = args.host
        elif "HOST" not in environ:
            env["HOST"] = (
                "127.0.0.1"  # a development server is not reachable from the network by default
            )
        if "LOG_FORMAT" not in environ and sys.stdout.isatty():
            env["LOG_FORMAT"] = "console"
    return env


def announce(settings) -> None:
    """Say where the API and its docs are, for a person at a terminal."""
    host = settings.host
    shown = (
        "localhost"
        if host in ("0.0.0.0", "::", "127.0.0.1", "::1")
        else (f"[{host}]" if ":" in host else host)
    )
    base = f"http://{shown}:{settings.port}"
    docs = f"   docs: {base}/docs" if settings.openapi else ""
    print(f"serving {settings.module_path} at {base}{docs}", file=sys.stderr, flush=True)


def _use_uvloop() -> None:
    """uvicorn's usual event loop, when installed (the `uvicorn` extra brings it)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
