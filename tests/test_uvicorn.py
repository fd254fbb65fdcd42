"""The same runtime under uvicorn (FLASH_SERVER=uvicorn): routes, health port, signals, drain."""

from __future__ import annotations

import signal

import httpx
from support import CORE_APP, Worker, free_port, hold_app, post_in_background, wait_marks


def test_serves_under_uvicorn():
    env = {"FLASH_SERVER": "uvicorn", "PORT_HEALTH": str(free_port())}
    with Worker(CORE_APP, env=env) as worker:
        worker.wait_ready()
        assert httpx.post(worker.url + "/scalars", json={"y": "4"}).json()["y"] == 4
        assert httpx.post(worker.url + "/scalars", json={}).status_code == 422
        assert httpx.get(worker.health_url + "/metrics").status_code == 200
        listening = next(line for line in worker.logs() if line["event"] == "listening")
        assert listening["server"] == "uvicorn"


def test_drains_and_exits_zero_under_uvicorn(tmp_path):
    release = tmp_path / "release"
    env = {
        "FLASH_SERVER": "uvicorn",
        "PORT_HEALTH": str(free_port()),
        "FLASH_DRAIN_QUIET": "0.5",
        "FLASH_GRACEFUL_TIMEOUT": "12",
        "HOLD_RELEASE": str(release),
    }
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        thread, results = post_in_background(worker.url + "/hold")
        wait_marks(release, "/hold")
        worker.wait_gauges(in_flight=1)
        worker.signal(signal.SIGTERM)
        assert worker.wait_status(503, timeout=10).json() == {"status": "draining"}
        assert worker.wait_log(lambda line: line["event"] == "draining")["in_flight"] == 1
        # Still held once the listener is closed and only what is in flight is being finished.
        finishing = worker.wait_log(
            lambda line: line["event"] == "finishing in-flight requests", timeout=30
        )
        assert finishing["in_flight"] == 1 and results == []
        release.touch()
        thread.join(30)
        assert [(r.status_code, r.json()) for r in results] == [(200, {"held": True})]
        assert worker.wait_exit(30) == 0
        listening = next(line for line in worker.logs() if line["event"] == "listening")
        assert listening["server"] == "uvicorn"
