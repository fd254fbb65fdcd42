"""The command line: `python entrypoint.py [--check]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

_STARTED = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="entrypoint.py",
        description="Serve a Runpod Flash load-balanced app from its flash_manifest.json. "
        "Configured by environment variables (see README).",
    )
    parser.add_argument(
        "--check", action="store_true",
        help="load the settings, the manifest and the handlers without serving; exit 1 on a startup error",
    )
    parser.add_argument("--print-manifest-schema", action="store_true",
                        help="print the JSON Schema of the manifest this runtime accepts, and exit")
    args = parser.parse_args(argv)

    from .logs import configure_logging, flush_buffered_lines, get_logger
    from .settings import ServerKind, Settings, SettingsError

    if args.print_manifest_schema:
        import json

        from .manifest import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        configure_logging()
        get_logger("runtime.boot").error("startup error", error=str(exc))
        return 2
    configure_logging(settings.log_level, settings.log_format)

    from .boot import check, log_startup_error, serve
    from .errors import StartupError
    from .loader import preload_runtime_modules

    try:
        preload_runtime_modules(
            with_uvicorn=settings.server is ServerKind.UVICORN, with_metrics=settings.metrics_served
        )
    except StartupError as exc:
        log_startup_error(exc)
        return 2
    if args.check:
        return check(settings)
    if settings.server is ServerKind.UVICORN:
        _use_uvloop()
    status, boot_finished = asyncio.run(serve(settings, _STARTED))
    if not boot_finished:
        # The app was still importing in a thread when a signal arrived; do not wait for it.
        flush_buffered_lines()
        sys.stdout.flush()
        os._exit(status)
    return status


def _use_uvloop() -> None:
    """uvicorn's usual event loop, when installed (the `uvicorn` extra brings it)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
