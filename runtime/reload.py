"""`serve --reload`: run the worker as a child process and start a fresh one when the app's files change.

The supervisor never imports the app: each worker imports it anew, so a change to any module,
the manifest or a model file takes effect. A worker that fails to boot (a syntax error just
saved) is reported and replaced on the next change. Development only: the images never use it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import structlog

from .settings import Settings

_log = structlog.get_logger("runtime.reload")
# What a change of is worth a restart: code, the manifest and the usual configuration files.
WATCHED_EXTENSIONS = (".json", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".env")
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
# The worker is this runtime in its plain, environment-configured mode.
_CHILD_CODE = (
    f"import sys; sys.path.insert(0, {_PACKAGE_PARENT!r}); "
    "from runtime.cli import main; sys.exit(main([]))"
)


class WorkerProcess:
    """The serving child: started, stopped with one SIGTERM (it drains), killed if it hangs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self._exit_reported = False

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("FLASH_DRAIN_QUIET", "0")  # nothing balances load in front: close at once
        # Its own session: a Ctrl-C at the terminal reaches the supervisor alone, which sends
        # exactly one SIGTERM (a second signal would make the worker exit without draining).
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE],
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._exit_reported = False

    def report_exit(self) -> None:
        """Log once that the worker stopped on its own (a startup error, a crash)."""
        if self.proc is not None and self.proc.poll() is not None and not self._exit_reported:
            self._exit_reported = True
            _log.warning("worker exited, waiting for a change", exit_code=self.proc.returncode)

    def stop(self) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.settings.graceful_timeout + 5)
            except subprocess.TimeoutExpired:
                _log.warning("worker did not stop, killing it", pid=proc.pid)
                proc.kill()
                proc.wait()
        return proc.returncode


def watched_roots(settings: Settings) -> list[Path]:
    """The app folder, and the manifest's folder when it lies outside it."""
    roots = [settings.module_path]
    if not settings.manifest_path.parent.is_relative_to(settings.module_path):
        roots.append(settings.manifest_path.parent)
    return roots


def serve_with_reload(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM, restarting the worker on every change; the last worker's status."""
    try:
        import watchfiles
    except ImportError:
        _log.error(
            "startup error",
            error="--reload needs watchfiles: pip install 'flash-worker-runtime[reload]'",
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    roots = watched_roots(settings)
    watch_filter = watchfiles.PythonFilter(extra_extensions=WATCHED_EXTENSIONS)
    worker = WorkerProcess(settings)
    worker.start()
    _log.info("watching for changes", paths=[str(root) for root in roots])
    for changes in watchfiles.watch(
        *roots,
        watch_filter=watch_filter,
        stop_event=stop,
        yield_on_timeout=True,
        rust_timeout=500,
        raise_interrupt=False,
    ):
        worker.report_exit()
        if not changes or stop.is_set():
            continue
        _log.info("reload", changed=sorted({_shown(Path(path), roots) for _, path in changes}))
        worker.stop()
        worker.start()
    return worker.stop()


def _shown(path: Path, roots: list[Path]) -> str:
    for root in roots:
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the supervisor dies (Linux), so no worker is orphaned."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
