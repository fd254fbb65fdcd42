"""The boot sequence: bind, unpack, read the manifest, import, build routes, run the hook, go ready."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from .app import WorkerApp, build_routed_app
from .artifact import unpack_artifact
from .deadlines import Deadlines
from .errors import StartupError
from .execute import Executor
from .handlers import Handler, SyncPool
from .health import Health, HealthState
from .limits import Limiter
from .logs import flush_buffered_lines
from .loader import extend_sys_path, import_handlers, in_daemon_thread, resolve_hook, run_hook
from .manifest import Manifest, Route, load_manifest, resource_routes, select_resource
from .metrics import make_metrics
from .server import Server, bind_address
from .settings import Settings

_log = structlog.get_logger("runtime.boot")


class LoadedApp(msgspec.Struct):
    """What loading produced: the resource served, its handlers and the optional startup hook."""

    resource: str
    routes: list[Route]
    handlers: list[Handler]
    hook: Callable[[], Any] | None
    executor: Executor | None
    phases: dict[str, float]
    title: str = "Flash worker"  # the app's name and build, for /docs
    version: str = ""


class _Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, name: str, func: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args)
        finally:
            self.seconds[name] = time.perf_counter() - start


def load_application(settings: Settings, pool: SyncPool, limiter: Limiter) -> LoadedApp:
    """Everything between a bound port and a routable app; StartupError on any problem."""
    phases = _Phases()
    if settings.artifact_path is not None:
        phases.timed("unpack", unpack_artifact, settings.artifact_path, settings.module_path)

    def read_manifest() -> tuple[str, list[Route], Manifest]:
        manifest = load_manifest(settings.manifest_path)
        name, resource = select_resource(manifest, settings.manifest_path, settings.resource_name)
        return name, resource_routes(name, resource, settings.manifest_path), manifest

    resource, routes, manifest = phases.timed("manifest", read_manifest)

    def import_all() -> list[Any]:
        extend_sys_path(settings.module_path, settings.app_venv)
        return import_handlers(routes, settings.manifest_path, settings.module_path)

    functions = phases.timed("import", import_all)

    def build() -> list[Handler]:
        deadlines = Deadlines()
        return [Handler(f, r, pool, limiter, settings.request_timeout, deadlines) for f, r in zip(functions, routes)]

    handlers = phases.timed("routes", build)
    hook = phases.timed("hook_import", resolve_hook, settings.startup_hook) if settings.startup_hook else None
    executor = Executor(pool) if settings.enable_execute else None
    title, version = app_title(manifest, resource)
    return LoadedApp(resource, routes, handlers, hook, executor, phases.seconds, title, version)


def app_title(manifest: Manifest, resource: str) -> tuple[str, str]:
    """The app's name (project, and the resource when it differs) and its build time, if known."""
    project = manifest.project_name or resource
    title = project if project == resource else f"{project} · {resource}"
    built = (manifest.generated_at or "")[:16].replace("T", " ")
    return title, f"built {built} UTC" if built else ""


def log_startup_error(exc: BaseException) -> None:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    _log.error("startup error", error=str(exc), exc_info=cause)


def check(settings: Settings) -> int:
    """`--check`: load everything a worker would, serve nothing; 0 when the app would boot."""
    try:
        app = load_application(settings, SyncPool(1), Limiter(settings.max_concurrency, settings.max_pending))
    except StartupError as exc:
        log_startup_error(exc)
        return 1
    _log.info("check passed", resource=app.resource, routes=[f"{r.method} {r.path}" for r in app.routes],
              phases_ms=_ms(app.phases))
    return 0


def check_all(settings: Settings) -> int:
    """`check`: `check` for every load-balanced resource (or the one named); 0 when all would boot."""
    if settings.resource_name is not None:
        return check(settings)
    try:
        if settings.artifact_path is not None:  # unpacked once, not once a resource
            unpack_artifact(settings.artifact_path, settings.module_path)
            settings = msgspec.structs.replace(settings, artifact_path=None)
        manifest = load_manifest(settings.manifest_path)
    except StartupError as exc:
        log_startup_error(exc)
        return 1
    names = sorted(name for name, resource in manifest.resources.items() if resource.is_load_balanced)
    if not names:
        return check(settings)  # the error a worker would report
    failed = [name for name in names if check(msgspec.structs.replace(settings, resource_name=name)) != 0]
    if failed:
        _log.error("check failed", failed=failed, passed=[name for name in names if name not in failed])
        return 1
    return 0


async def serve(settings: Settings, started_at: float) -> tuple[int, bool]:
    """Run the worker until shut down; returns (exit status, whether boot finished)."""
    health = Health()
    metrics = make_metrics(settings.metrics_served)
    worker = WorkerApp(settings, health, metrics)
    server = Server(settings, worker, health)
    try:
        server.bind()
    except OSError as exc:
        _log.error("startup error", error=f"cannot listen on {bind_address(settings.host, settings.port)}: {exc}")
        return 1, True
    _log.info(
        "listening",
        addresses=sorted({bind_address(settings.host, p) for p in (settings.port, settings.health_port)}),
        server=settings.server.value,
        loop=_loop_name(),
    )
    pool = SyncPool(settings.sync_threads)
    limiter = Limiter(settings.max_concurrency, settings.max_pending)
    metrics.watch_pending(lambda: limiter.pending)
    finished = False

    async def boot() -> bool:
        nonlocal finished
        try:
            app = await in_daemon_thread(load_application, settings, pool, limiter)
            if app.hook is not None:
                start = time.perf_counter()
                await run_hook(settings.startup_hook or "", app.hook)
                app.phases["startup_hook"] = time.perf_counter() - start
        except StartupError as exc:
            log_startup_error(exc)
            return False
        finally:
            finished = True
        worker.attach(build_routed_app(app.handlers, settings, health, metrics, app.executor, app.title, app.version))
        # Everything loaded so far (modules, the app's models and tables) lives as long as the
        # worker: move it out of the collector's generations, so full collections under load
        # stop traversing it again and again (with large in-memory models, each one was a pause).
        gc.freeze()
        if health.state is HealthState.STARTING:
            health.state = HealthState.READY
        metrics.record_boot(app.phases)
        _log.info(
            "boot",
            resource=app.resource,
            routes=[f"{r.method} {r.path}" for r in app.routes],
            phases_ms=_ms(app.phases),
            settings=settings.public(),
            loop=_loop_name(),
            frozen_objects=gc.get_freeze_count(),
        )
        _log.info("ready", since_start_ms=round((time.monotonic() - started_at) * 1000, 1))
        return True

    try:
        status = await server.run(boot)
    finally:
        pool.shutdown()
    flush_buffered_lines()  # the last access lines before the last line
    _log.info("stopped", exit_code=status)
    return status, finished


def _loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def _ms(phases: dict[str, float]) -> dict[str, float]:
    return {name: round(seconds * 1000, 3) for name, seconds in phases.items()}

