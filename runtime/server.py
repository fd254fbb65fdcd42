"""The server: sockets bound before anything is imported, signals, and the drain on shutdown.

Shutdown sequence on SIGTERM or SIGINT:
1. `/ping` answers 503 at once, so the load balancer stops routing here. Requests that still
   arrive are served; responses carry `Connection: close` so keep-alive clients reconnect.
2. The listener closes once no request has been in flight for FLASH_DRAIN_QUIET seconds, or at
   the latest when half of FLASH_GRACEFUL_TIMEOUT has passed (the other half is for finishing):
   new connections are refused first, and a quarter second later idle connections are closed,
   so a request already on the wire of a just-accepted connection is still read and served.
3. In-flight requests finish, within what is left of FLASH_GRACEFUL_TIMEOUT; the process exits 0.
A second signal exits at once, with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import structlog

from .health import Health, HealthState
from .logs import flush_buffered_lines
from .settings import ServerKind, Settings
from .wire import (
    HEAD_SLACK,
    WireLimits,
    guarded_httptools_protocol,
    install_hypercorn_guard,
    websocket_protocol,
)

_log = structlog.get_logger("runtime.server")
_ACCEPT_GRACE = 0.25  # seconds between refusing new connections and closing idle ones
_EXIT_GRACE = 1.0  # seconds the interpreter's own shutdown may take when no signal set a deadline


def exit_by(deadline: float, status: int) -> None:
    """Make sure the process is gone by `deadline` (time.monotonic()).

    Python joins non-daemon threads at exit: a `def` handler that never returns (the pool's
    threads) or a thread the app started would keep a drained worker alive until SIGKILL. A
    daemon thread waits for the normal shutdown until the deadline, then flushes what can be
    flushed, names the threads still running and exits: with status 1 when it was 0, since not
    everything finished.
    """

    def expire() -> None:
        time.sleep(max(0.0, deadline - time.monotonic()))
        alive = sorted(
            t.name
            for t in threading.enumerate()
            if not t.daemon and t is not threading.main_thread()
        )
        _log.warning("threads still running at exit, exiting anyway", threads=alive)
        flush_buffered_lines()
        with contextlib.suppress(ValueError, OSError):
            sys.stdout.flush()
        os._exit(status or 1)

    threading.Thread(target=expire, name="exit-deadline", daemon=True).start()


def wire_limits(settings: Settings) -> WireLimits:
    return WireLimits(
        settings.max_header_bytes,
        settings.max_headers,
        settings.header_timeout,
        settings.max_body_bytes,
        settings.body_timeout,
    )


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Server:
    """Owns the listening sockets, the ASGI server running on them, and the shutdown sequence."""

    def __init__(self, settings: Settings, app: Any, health: Health):
        self.settings = settings
        self.app = app
        self.health = health
        self._stop = asyncio.Event()
        self._signals = 0
        self.signalled_at: float | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self.sockets: list[socket.socket] = []
        self.backend = (
            _Hypercorn(settings) if settings.server is ServerKind.HYPERCORN else _Uvicorn(settings)
        )

    def bind(self) -> list[socket.socket]:
        """Bind the listeners now, so the port answers (204) while the app still loads."""
        ports = [self.settings.port]
        if self.settings.separate_health_port:
            ports.append(self.settings.health_port)
        for port in ports:
            self.sockets.append(listen(self.settings.host, port))
        return self.sockets

    async def run(self, boot: Callable[[], Coroutine[Any, Any, bool]]) -> int:
        """Serve; run `boot` meanwhile; return the exit status once shut down."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        serving = asyncio.create_task(self.backend.serve(self.app, self.sockets, self._stop))
        booting = asyncio.create_task(boot())
        await asyncio.wait({serving, booting}, return_when=asyncio.FIRST_COMPLETED)
        if not booting.done():  # a signal stopped the server while the app was still loading
            return 0
        if not booting.result():
            self._stop.set()
            await serving
            return 1
        await serving
        if self._drain_task is not None and not self._drain_task.done():
            self._drain_task.cancel()
        return 0

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()
        if self._signals > 1:
            _log.warning("second signal, exiting now", signal=signal.Signals(signum).name)
            flush_buffered_lines()
            os._exit(1)
        if self.health.state is HealthState.STARTING:
            _log.info(
                "draining",
                signal=signal.Signals(signum).name,
                in_flight=self.health.in_flight,
                booting=True,
            )
            self.health.state = HealthState.DRAINING
            self._stop.set()
            return
        self.health.state = HealthState.DRAINING
        _log.info("draining", signal=signal.Signals(signum).name, in_flight=self.health.in_flight)
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        settings = self.settings
        started = time.monotonic()
        latest_close = started + settings.graceful_timeout / 2
        # Quiet means no request for drain_quiet seconds: a condition of time, so it is polled.
        while time.monotonic() < latest_close and self.health.idle_for() < settings.drain_quiet:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        _log.info("closing listener", in_flight=self.health.in_flight)
        self._stop_accepting()
        # Connections accepted a moment ago may still have their request on the wire; once it is
        # read it is in flight and will be finished. Only then are idle connections closed.
        await asyncio.sleep(_ACCEPT_GRACE)
        remaining = max(0.0, started + settings.graceful_timeout - time.monotonic())
        _log.info(
            "finishing in-flight requests",
            in_flight=self.health.in_flight,
            within_s=round(remaining, 3),
        )
        self.backend.set_graceful_timeout(remaining)
        self._stop.set()

    def exit_deadline(self) -> float:
        """When the process must be gone: FLASH_GRACEFUL_TIMEOUT after the signal (a moment after
        serving ended when there was none, e.g. a failed boot)."""
        if self.signalled_at is None:
            return time.monotonic() + _EXIT_GRACE
        return max(self.signalled_at + self.settings.graceful_timeout, time.monotonic() + 0.1)

    def _stop_accepting(self) -> None:
        """Refuse new connections on the main port at once (the health port stays until exit)."""
        loop = asyncio.get_running_loop()
        main = self.sockets[0]
        try:
            loop.remove_reader(main.fileno())  # the server's accept loop stops here
        except (NotImplementedError, ValueError, OSError):
            return  # a loop that does not accept through add_reader (uvloop): the server's own close does it
        try:
            main.shutdown(socket.SHUT_RD)  # new SYNs are refused instead of queued
        except OSError:
            pass


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket (dual stack for an IPv6 host such as `::`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _Hypercorn:
    """Hypercorn, given the already-listening sockets as `fd://` binds."""

    def __init__(self, settings: Settings):
        import logging

        from hypercorn.config import Config

        config = Config()
        install_hypercorn_guard(wire_limits(settings))
        config.h11_max_incomplete_size = settings.max_header_bytes + HEAD_SLACK
        config.keep_alive_timeout = settings.keep_alive_timeout
        config.graceful_timeout = settings.graceful_timeout
        config.backlog = 2048
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.include_server_header = False
        self.config = config

    def set_graceful_timeout(self, seconds: float) -> None:
        self.config.graceful_timeout = seconds

    async def serve(self, app: Any, sockets: list[socket.socket], stop: asyncio.Event) -> None:
        from hypercorn.asyncio import serve

        self.config.bind = [f"fd://{sock.fileno()}" for sock in sockets]
        await serve(app, self.config, shutdown_trigger=stop.wait, mode="asgi")


class _Uvicorn:
    """uvicorn (httptools, uvloop when installed) on the same sockets, signals left to the runtime."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.graceful_timeout = settings.graceful_timeout

    def set_graceful_timeout(self, seconds: float) -> None:
        self.graceful_timeout = seconds

    async def serve(self, app: Any, sockets: list[socket.socket], stop: asyncio.Event) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the runtime owns the signals
                yield

        # proxy_headers off: as under Hypercorn, the client is the TCP peer, never X-Forwarded-For.
        config = uvicorn.Config(
            app,
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=int(self.settings.keep_alive_timeout),
            backlog=2048,
            http=guarded_httptools_protocol(wire_limits(self.settings)),
            ws=websocket_protocol(),
        )
        server = _Server(config)

        async def watch() -> None:
            await stop.wait()
            server.config.timeout_graceful_shutdown = max(1, round(self.graceful_timeout))
            server.should_exit = True

        watcher = asyncio.create_task(watch())
        try:
            await server.serve(sockets=sockets)
        finally:
            watcher.cancel()
