"""Load the user's application: sys.path, the manifest's modules and functions, the startup hook.

Dependency isolation: `preload_runtime_modules` imports every module the runtime serves with,
including the ones Starlette and the servers import lazily, *before* the application's folders
go on `sys.path`. A `flash build` artifact bundles its own FastAPI, Starlette and pydantic; with
the runtime's copies already in `sys.modules`, those bundled copies cannot replace them.
"""

from __future__ import annotations

import asyncio
import glob
import importlib
import inspect
import site
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import StartupError
from .manifest import Route

_RUNTIME_MODULES = (
    "anyio",
    "h11",
    "multipart",
    "python_multipart",
    "starlette.applications",
    "starlette.formparsers",
    "starlette.middleware.body_limit",
    "starlette.routing",
    "starlette.responses",
    "starlette.staticfiles",
    "hypercorn.asyncio",
    "hypercorn.asyncio.run",
    "hypercorn.asyncio.tcp_server",
    "hypercorn.protocol.h11",
    "hypercorn.protocol.h2",
    "msgspec.json",
    "orjson",
    "structlog",
)
_UVICORN_MODULES = (
    "uvicorn",
    "uvicorn.server",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.lifespan.on",
    "uvicorn.loops.uvloop",
    "uvloop",
    "httptools",
)


def preload_runtime_modules(with_uvicorn: bool = False, with_metrics: bool = False) -> None:
    """Import the runtime's dependencies from its own environment, before the app's paths exist."""
    for name in _RUNTIME_MODULES:
        importlib.import_module(name)
    if with_metrics:
        importlib.import_module("prometheus_client")
    if with_uvicorn:
        for name in _UVICORN_MODULES:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                if name in ("uvicorn", "uvicorn.server"):
                    raise StartupError(
                        "FLASH_SERVER=uvicorn needs the 'uvicorn' extra (pip install 'flash-worker-runtime[uvicorn]')"
                    ) from exc


def extend_sys_path(module_path: Path, app_venv: Path | None) -> None:
    """Put the application folder first on sys.path, then the app's own virtualenv packages."""
    if not module_path.is_dir():
        raise StartupError(f"FLASH_MODULE_PATH: not a directory: {module_path}")
    folder = str(module_path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if app_venv is not None:
        found = sorted(glob.glob(str(app_venv / "lib" / "python*" / "site-packages")))
        if not found:
            raise StartupError(f"FLASH_APP_VENV: no site-packages under {app_venv}")
        position = 1  # after the application folder, before the runtime's own packages
        for packages in [*found, *_system_site_packages(app_venv)]:
            before = list(sys.path)
            site.addsitedir(packages)  # also runs the .pth files of editable installs
            new = [p for p in sys.path if p not in before]
            for entry in new:
                sys.path.remove(entry)
            sys.path[position:position] = new
            position += len(new)


def _system_site_packages(venv: Path) -> list[str]:
    """The base interpreter's site-packages when the venv was made with --system-site-packages
    (the GPU image's app venv sees the base's torch and numpy that way), as its python would."""
    try:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return []
    config = {
        key.strip().lower(): value.strip()
        for key, _, value in (line.partition("=") for line in lines)
    }
    if config.get("include-system-site-packages", "").lower() != "true" or not config.get("home"):
        return []
    prefix = str(Path(config["home"]).parent)
    return [path for path in site.getsitepackages([prefix]) if Path(path).is_dir()]


def import_handlers(
    routes: list[Route], manifest_path: Path, module_path: Path
) -> list[Callable[..., Any]]:
    """The function object of every route, in order; errors name the manifest entry."""
    functions = []
    for route in routes:
        where = f"{manifest_path}: {route.entry}"
        try:
            module = importlib.import_module(route.module)
        except ModuleNotFoundError as exc:
            if exc.name and (route.module == exc.name or route.module.startswith(exc.name + ".")):
                raise StartupError(
                    f"{where}: module {route.module!r} not found under {module_path}"
                ) from exc
            raise StartupError(f"{where}: importing module {route.module!r} failed: {exc}") from exc
        except Exception as exc:
            raise StartupError(
                f"{where}: importing module {route.module!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        function = getattr(module, route.function, None)
        if function is None:
            raise StartupError(
                f"{where}: module {route.module!r} has no function {route.function!r}"
            )
        if not callable(function):
            raise StartupError(f"{where}: {route.module}.{route.function} is not callable")
        functions.append(function)
    return functions


def resolve_hook(spec: str) -> Callable[[], Any]:
    """The callable named by FLASH_STARTUP_HOOK (`module:callable`)."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise StartupError(
            f"FLASH_STARTUP_HOOK={spec!r}: importing {module_name!r} failed: {exc}"
        ) from exc
    hook = getattr(module, attribute, None)
    if not callable(hook):
        raise StartupError(
            f"FLASH_STARTUP_HOOK={spec!r}: {module_name} has no callable {attribute!r}"
        )
    return hook


def in_daemon_thread(func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run blocking boot work (imports, model loading) off the loop, in a daemon thread.

    Unlike the loop's default executor, a daemon thread does not hold the process open: a
    SIGTERM during a long import can exit without waiting for it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(error: BaseException | None, value: Any) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def run() -> None:
        try:
            value, error = func(*args), None
        except BaseException as exc:  # handed to the awaiting coroutine
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, error, value)
        except RuntimeError:
            pass  # the loop is already closed: the process is exiting

    threading.Thread(target=run, name="boot", daemon=True).start()
    return future


async def run_hook(spec: str, hook: Callable[[], Any]) -> None:
    """Run the startup hook: an async one on the loop, a plain one in a thread."""
    try:
        if inspect.iscoroutinefunction(hook):
            await hook()
        else:
            result = await in_daemon_thread(hook)
            if inspect.isawaitable(result):
                await result
    except Exception as exc:
        raise StartupError(
            f"FLASH_STARTUP_HOOK={spec!r} raised {type(exc).__name__}: {exc}"
        ) from exc
