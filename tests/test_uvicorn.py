"""The same runtime under uvicorn (FLASH_SERVER=uvicorn): routes, health port, signals, drain."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from support import CORE_APP, Worker, free_port


def test_serves_drains_and_exits_zero_under_uvicorn():
    env = {"FLASH_SERVER": "uvicorn", "PORT_HEALTH": str(free_port()), "FLASH_DRAIN_QUIET": "0.5"}
    with Worker(CORE_APP, env=env) as worker:
        worker.wait_ready()
        assert httpx.post(worker.url + "/scalars", json={"y": "4"}).json()["y"] == 4
        assert httpx.post(worker.url + "/scalars", json={}).status_code == 422
        assert httpx.get(worker.health_url + "/metrics").status_code == 200
        results: list = []
        thread = threading.Thread(target=lambda: results.append(
            httpx.post(worker.url + "/slow-async", json={"seconds": 2}, timeout=30)))
        thread.start()
        time.sleep(0.5)
        worker.signal(signal.SIGTERM)
        assert worker.wait_status(503, timeout=2).json() == {"status": "draining"}
        thread.join(30)
        assert results and results[0].status_code == 200
        assert worker.wait_exit(30) == 0
        listening = next(line for line in worker.logs() if line["event"] == "listening")
        assert listening["server"] == "uvicorn"
