"""Logs: a boot line with settings and phase durations, one access line per request."""

from __future__ import annotations

import json
import time

import httpx

from support import CORE_APP
from support import Worker


def test_boot_and_access_lines_are_json(core_worker):
    httpx.post(core_worker.url + "/scalars", json={"y": 1}, headers={"X-Request-ID": "log-check-1"})
    httpx.get(core_worker.url + "/ping")
    core_worker.wait_log(lambda line: line.get("request_id") == "log-check-1" and line["event"] == "request")
    logs = core_worker.logs()
    boot = next(line for line in logs if line["event"] == "boot")
    assert boot["level"] == "info" and boot["resource"] == "core"
    assert boot["settings"]["sync_threads"] == 4 and "graceful_timeout" in boot["settings"]
    assert all(isinstance(v, float) for v in boot["phases_ms"].values())
    assert boot["frozen_objects"] > 10_000  # the boot-time heap, moved out of the collector's way
    access = [line for line in logs if line["event"] == "request"]
    mine = [line for line in access if line.get("request_id") == "log-check-1"]
    assert len(mine) == 1
    assert mine[0] | {"duration_ms": 0, "timestamp": ""} == {
        "event": "request", "level": "info", "request_id": "log-check-1", "method": "POST",
        "path": "/scalars", "route": "/scalars", "status": 200, "duration_ms": 0, "timestamp": "",
    }
    assert not any(line["path"] == "/ping" for line in access)


def test_every_stdout_line_is_json():
    with Worker(CORE_APP, env={"LOG_LEVEL": "DEBUG"}) as worker:
        worker.wait_ready()
        httpx.post(worker.url + "/boom", json={})
        worker.stop()
        for line in worker.lines:
            assert isinstance(json.loads(line), dict), line


def test_console_format_is_not_json():
    with Worker(CORE_APP, env={"LOG_FORMAT": "console"}) as worker:
        worker.wait_ready()
        time.sleep(0.2)
        assert worker.lines and not worker.logs()
        assert any("ready" in line for line in worker.lines)
