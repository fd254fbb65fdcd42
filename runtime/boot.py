"""The boot sequence: bind, unpack, read the manifest, import, build routes, run the hook, go ready."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec
import structlog

from . import bytecode, cpuinfo_probe
from .app import WorkerApp, build_routed_app
from .appcache import prepare_root, unpack_cached
from .artifact import Unpacked, UnpackLimits, open_artifact, unpack_artifact, wait_for_artifact
from .binding import FormLimits
from .deadlines import Deadlines
from .errors import StartupError
from .execute import Executor
from .handlers import Handler, SyncPool
from .health import Health, HealthState
from .import_timer import ImportTimes, Phases
from .limits import Limiter
from .loader import extend_sys_path, import_handlers, in_daemon_thread, resolve_hook, run_hook
from .logs import flush_buffered_lines
from .manifest import (
    Manifest,
    Route,
    check_module_name,
    load_manifest,
    resource_routes,
    select_resource,
)
from .metrics import make_metrics
from .privileges import drop_privileges, running_as_root
from .server import Server, bind_address, exit_by
from .settings import Settings
from .venvlinks import VenvPackages, site_packages

_log = structlog.get_logger("runtime.boot")


class LoadedApp(msgspec.Struct):
    """What loading produced: the resource served, its handlers and the optional startup hook."""

    resource: str
    routes: list[Route]
    handlers: list[Handler]
    hook: Callable[[], Any] | None
    executor: Executor | None
    phases: dict[str, float]
    slowest_imports: dict[str, float] = {}
    title: str = "Flash worker"  # the app's name and build, for /docs
    version: str = ""
    artifact_cache: str | None = None  # FLASH_CACHE_DIR's result: hit, miss or ignored
    bytecode_store_hits: int | None = None  # modules whose code came from FLASH_BYTECODE_STORE
    app_venv_links: dict[str, int] | None = None  # what the unpack took from FLASH_APP_VENV


def load_application(
    settings: Settings, pool: SyncPool, limiter: Limiter, artifact: IO[bytes] | None = None
) -> LoadedApp:
    """Everything between a bound port and a routable app; StartupError on any problem.

    `artifact` is the build archive, opened before privileges were dropped; it is unpacked here.
    """
    phases = Phases()
    cache, links = (
        phases.timed("unpack", _unpack, settings, artifact, phases.seconds)
        if artifact is not None
        else (None, None)
    )

    def read_manifest() -> tuple[str, list[Route], Manifest]:
        manifest = load_manifest(settings.manifest_path)
        name, resource = select_resource(manifest, settings.manifest_path, settings.resource_name)
        if settings.module_name is not None:
            check_module_name(settings.module_name, name, resource, settings.manifest_path)
        return name, resource_routes(name, resource, settings.manifest_path), manifest

    resource, routes, manifest = phases.timed("manifest", read_manifest)

    import_times = ImportTimes()
    store = None

    def import_all() -> list[Any]:
        nonlocal store
        extend_sys_path(settings.module_path, settings.app_venv)
        if settings.fast_cpuinfo:
            cpuinfo_probe.install()
        if settings.bytecode_store is not None:
            store = _bytecode_store(settings.bytecode_store)
        with import_times.measuring():
            return import_handlers(routes, settings.manifest_path, settings.module_path)

    functions = phases.timed("import", import_all)

    def build() -> list[Handler]:
        deadlines = Deadlines()
        forms = FormLimits(
            settings.max_form_fields, settings.max_form_files, settings.max_form_part_bytes
        )
        return [
            Handler(f, r, pool, limiter, settings.request_timeout, deadlines, forms)
            for f, r in zip(functions, routes, strict=True)
        ]

    handlers = phases.timed("routes", build)
    hook = (
        phases.timed("hook_import", resolve_hook, settings.startup_hook)
        if settings.startup_hook
        else None
    )
    executor = Executor(pool) if settings.enable_execute else None
    title, version = app_title(manifest, resource)
    return LoadedApp(
        resource,
        routes,
        handlers,
        hook,
        executor,
        phases.seconds,
        import_times.slowest(),
        title,
        version,
        cache,
        store.hits if store is not None else None,
        links,
    )


def _bytecode_store(path: Path) -> bytecode.Store | None:
    """The bytecode store, installed for the app's imports; None (and why, logged) when refused."""
    try:
        return bytecode.install(path)
    except bytecode.StoreRefused as exc:
        _log.warning("bytecode store not used", store=str(path), reason=str(exc))
        return None


def app_title(manifest: Manifest, resource: str) -> tuple[str, str]:
    """The app's name (project, and the resource when it differs) and its build time, if known."""
    project = manifest.project_name or resource
    title = project if project == resource else f"{project} · {resource}"
    built = (manifest.generated_at or "")[:16].replace("T", " ")
    return title, f"built {built} UTC" if built else ""


def _unpack(
    settings: Settings, artifact: IO[bytes], phases: dict[str, float] | None = None
) -> tuple[str | None, dict[str, int] | None]:
    """Unpack (or, with FLASH_CACHE_DIR, link the cached tree): the cache's result, if one is set,
    and what was taken from the app venv, when FLASH_LINK_APP_VENV applied."""
    label = f"{settings.artifact_setting}={settings.artifact_path}"
    limits = UnpackLimits(settings.artifact_max_bytes, settings.artifact_max_members)
    unpacked: Unpacked | None
    shared = _venv_packages(settings)
    with artifact:
        if settings.artifact_cache is None:
            unpacked = unpack_artifact(artifact, label, settings.module_path, limits, shared)
            cache = None
        else:
            cache = unpack_cached(
                artifact, label, settings.module_path, limits, settings.artifact_cache, shared
            )
            unpacked = cache.unpacked
            if phases is not None:
                phases.update(cache.seconds)
    links = _linked(unpacked) if shared is not None and unpacked is not None else None
    _log.info(
        "unpacked",
        artifact=str(settings.artifact_path),
        into=str(settings.module_path),
        members=unpacked.members if unpacked else None,
        bytes=unpacked.bytes if unpacked else None,
        **(links or {}),
    )
    return (cache.result if cache else None), links


def _venv_packages(settings: Settings) -> VenvPackages | None:
    """The app venv's site-packages for the unpacker to link identical members to."""
    if settings.app_venv is None or not settings.link_app_venv:
        return None
    folder = site_packages(settings.app_venv)
    return VenvPackages(folder) if folder is not None else None


def _linked(unpacked: Unpacked) -> dict[str, int]:
    return {
        "linked_dirs": unpacked.linked_dirs,
        "linked_files": unpacked.linked_files,
        "copied_files": unpacked.copied_files,
    }


def open_privileged(settings: Settings) -> IO[bytes] | None:
    """Open what needs the starting user's rights (the artifact), then drop them for good."""
    artifact = None
    if settings.artifact_path is not None:
        artifact = open_artifact(settings.artifact_path, settings.artifact_setting)
    _become_app_user(settings, artifact)
    return artifact


def _become_app_user(settings: Settings, artifact: IO[bytes] | None) -> None:
    if artifact is not None:
        prepare_root(settings.artifact_cache, settings.run_as)  # the volume is root's
    try:
        dropped = drop_privileges(settings.run_as)
    except StartupError:
        if artifact is not None:
            artifact.close()
        raise
    if dropped:
        _log.info("dropped privileges", uid=os.getuid(), gid=os.getgid())
    elif running_as_root():
        _log.warning(
            "application code runs as root (FLASH_USER=root); never do this on a deployed worker"
        )


def log_startup_error(exc: BaseException) -> None:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    _log.error("startup error", error=str(exc), exc_info=cause)


def check(settings: Settings) -> int:
    """`--check`: load everything a worker would, serve nothing; 0 when the app would boot."""
    try:
        artifact = open_privileged(settings)
        app = load_application(
            settings, SyncPool(1), Limiter(settings.max_concurrency, settings.max_pending), artifact
        )
    except StartupError as exc:
        log_startup_error(exc)
        return 1
    _log.info(
        "check passed",
        resource=app.resource,
        routes=[f"{r.method} {r.path}" for r in app.routes],
        phases_ms=_ms(app.phases),
        slowest_imports_ms=app.slowest_imports,
    )
    return 0


def check_all(settings: Settings) -> int:
    """`check`: `check` for every load-balanced resource (or the one named); 0 when all would boot."""
    if settings.resource_name is not None:
        return check(settings)
    try:
        artifact = open_privileged(settings)
        if artifact is not None:  # unpacked once, not once a resource
            _unpack(settings, artifact)
            settings = msgspec.structs.replace(settings, artifact_path=None)
        manifest = load_manifest(settings.manifest_path)
    except StartupError as exc:
        log_startup_error(exc)
        return 1
    names = sorted(
        name for name, resource in manifest.resources.items() if resource.is_load_balanced
    )
    if not names:
        return check(settings)  # the error a worker would report
    failed = [
        name for name in names if check(msgspec.structs.replace(settings, resource_name=name)) != 0
    ]
    if failed:
        _log.error(
            "check failed", failed=failed, passed=[name for name in names if name not in failed]
        )
        return 1
    return 0


async def _load(settings: Settings, pool: SyncPool, limiter: Limiter) -> LoadedApp:
    """Open the artifact as the starting user (waiting for a late volume), drop root, load the
    app in a daemon thread and run the startup hook."""
    phases: dict[str, float] = {}
    artifact = None
    if settings.artifact_path is not None:
        start = time.perf_counter()
        artifact = await wait_for_artifact(
            settings.artifact_path,
            settings.artifact_setting,
            settings.artifact_wait,
            lambda: _log.info(
                "waiting for the build artifact",
                path=str(settings.artifact_path),
                up_to_s=settings.artifact_wait,
            ),
        )
        phases["artifact_wait"] = time.perf_counter() - start
    _become_app_user(settings, artifact)
    app = await in_daemon_thread(load_application, settings, pool, limiter, artifact)
    app.phases = {**phases, **app.phases}
    if app.hook is not None:
        start = time.perf_counter()
        await run_hook(settings.startup_hook or "", app.hook)
        app.phases["startup_hook"] = time.perf_counter() - start
    return app


async def serve(settings: Settings, started_at: float) -> tuple[int, bool]:
    """Run the worker until shut down; returns (exit status, whether boot finished)."""
    health = Health()
    metrics = make_metrics(settings.metrics_served)
    worker = WorkerApp(settings, health, metrics)
    server = Server(settings, worker, health)
    if not _listen(server, settings):
        return 1, True
    # The interpreter's start to here: the runtime's own imports, settings, the bound sockets.
    runtime_start = time.monotonic() - started_at
    pool = SyncPool(settings.sync_threads)
    limiter = Limiter(settings.max_concurrency, settings.max_pending, settings.max_queue_wait)
    health.capacity_lost = lambda: pool.exhausted or limiter.exhausted
    metrics.watch_pending(lambda: limiter.pending)
    metrics.watch_slots(lambda: limiter.active)
    boot = _Boot(settings, worker, pool, limiter, started_at, runtime_start)
    try:
        status = await server.run(boot)
    finally:
        pool.shutdown()
    flush_buffered_lines()  # the last access lines before the last line
    _log.info("stopped", exit_code=status)
    exit_by(server.exit_deadline(), status)
    return status, boot.finished


def _listen(server: Server, settings: Settings) -> bool:
    """Bind the port(s) and say so; False (logged as a startup error) when the address is taken."""
    try:
        server.bind()
    except OSError as exc:
        _log.error(
            "startup error",
            error=f"cannot listen on {bind_address(settings.host, settings.port)}: {exc}",
        )
        return False
    _log.info(
        "listening",
        addresses=sorted(
            {bind_address(settings.host, p) for p in (settings.port, settings.health_port)}
        ),
        server=settings.server.value,
        loop=_loop_name(),
    )
    return True


class _Boot:
    """Loads the app while the port answers `/ping` with 204, then makes the worker ready.

    Called once by the server; `finished` tells whether loading ran to its end (or its error).
    """

    def __init__(
        self,
        settings: Settings,
        worker: WorkerApp,
        pool: SyncPool,
        limiter: Limiter,
        started_at: float,
        runtime_start: float,
    ):
        self.settings = settings
        self.worker = worker
        self.pool = pool
        self.limiter = limiter
        self.started_at = started_at
        self.runtime_start = runtime_start
        self.finished = False

    async def __call__(self) -> bool:
        try:
            app = await _load(self.settings, self.pool, self.limiter)
            app.phases = {"runtime_start": self.runtime_start, **app.phases}
        except StartupError as exc:
            log_startup_error(exc)
            return False
        finally:
            self.finished = True
        self._go_ready(app)
        return True

    def _go_ready(self, app: LoadedApp) -> None:
        worker, health, metrics = self.worker, self.worker.health, self.worker.metrics
        worker.attach(
            build_routed_app(
                app.handlers, self.settings, health, metrics, app.executor, app.title, app.version
            )
        )
        # Everything loaded so far (modules, the app's models and tables) lives as long as the
        # worker: move it out of the collector's generations, so full collections under load
        # do not traverse it again and again (with large in-memory models, each traversal is a pause).
        gc.freeze()
        if health.state is HealthState.STARTING:
            health.state = HealthState.READY
        metrics.record_boot(app.phases)
        _log.info(
            "boot",
            resource=app.resource,
            routes=[f"{r.method} {r.path}" for r in app.routes],
            phases_ms=_ms(app.phases),
            artifact_cache=app.artifact_cache,
            bytecode_store_hits=app.bytecode_store_hits,
            app_venv_links=app.app_venv_links,
            slowest_imports_ms=app.slowest_imports,
            settings=self.settings.public(),
            uid=os.getuid(),
            loop=_loop_name(),
            frozen_objects=gc.get_freeze_count(),
        )
        _log.info("ready", since_start_ms=round((time.monotonic() - self.started_at) * 1000, 1))


def _loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def _ms(phases: dict[str, float]) -> dict[str, float]:
    return {name: round(seconds * 1000, 3) for name, seconds in phases.items()}
