"""Logs: a boot line with settings and phase durations, one access line per request."""

from __future__ import annotations

import json
import time

import httpx
from support import CORE_APP, Worker


def test_boot_and_access_lines_are_json(core_worker):
    httpx.post(core_worker.url + "/scalars", json={"y": 1}, headers={"X-Request-ID": "log-check-1"})
    httpx.get(core_worker.url + "/ping")
    core_worker.wait_log(
        lambda line: line.get("request_id") == "log-check-1" and line["event"] == "request"
    )
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
        "event": "request",
        "level": "info",
        "request_id": "log-check-1",
        "method": "POST",
        "path": "/scalars",
        "route": "/scalars",
        "status": 200,
        "duration_ms": 0,
        "timestamp": "",
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
        deadline = time.monotonic() + 10
        while not any("ready" in line for line in worker.lines):
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.02)
        assert not worker.logs()


LOGS_SEPARATORS = """
import logging


def shout(text: str = "") -> dict:
    logging.getLogger("app").warning("said %s", text)
    return {"ok": True}
"""


def test_unicode_line_separators_from_requests_are_escaped_in_log_lines(tmp_path):
    """U+2028, U+2029 and NEL are valid inside JSON strings, but readers that split lines on them
    (str.splitlines, JavaScript) would cut the line: they are written as escapes."""
    from support import lb_manifest, write_app

    app = write_app(
        tmp_path / "app",
        lb_manifest(("shout", "shout", "GET", "/shout")),
        {"shout.py": LOGS_SEPARATORS},
    )
    with Worker(app) as worker:
        worker.wait_ready()
        path = "/shout%E2%80%A8%C2%85"  # a 404 whose path carries the characters
        httpx.get(worker.url + path, headers={"X-Request-ID": "sep-1"})
        httpx.get(
            worker.url + "/shout",
            params={"text": "a\u2028b\u2029c\x85d"},
            headers={"X-Request-ID": "sep-2"},
        )
        worker.wait_log(
            lambda line: line.get("request_id") == "sep-2" and line["event"] == "request"
        )
        worker.wait_log(
            lambda line: line.get("request_id") == "sep-1" and line["event"] == "request"
        )
        warning = worker.wait_log(lambda line: line["event"].startswith("said "))
        assert warning["event"] == "said a\u2028b\u2029c\x85d"
        for line in worker.lines:
            assert line.splitlines() == [line], line
        raw = "\n".join(worker.lines)
        assert "\\u2028" in raw and "\\u2029" in raw and "\\u0085" in raw


LOADED = """
import sys


def loaded() -> list:
    return sorted(name for name in sys.modules if name.split(".")[0] in ("rich", "pygments"))
"""


def test_json_logs_do_not_import_the_terminal_pretty_printers(tmp_path):
    """structlog imports rich (and rich pygments) when installed; JSON logs never use them."""
    import importlib.util

    from support import lb_manifest, write_app

    assert importlib.util.find_spec("rich") is not None, (
        "the dev environment has rich (runpod-flash brings it)"
    )
    app = write_app(
        tmp_path / "app", lb_manifest(("loaded", "loaded", "GET", "/loaded")), {"loaded.py": LOADED}
    )
    with Worker(app) as worker:
        worker.wait_ready()
        assert httpx.get(worker.url + "/loaded").json() == []
    with Worker(app, env={"LOG_FORMAT": "console"}) as worker:
        worker.wait_ready()
        assert "rich" in httpx.get(worker.url + "/loaded").json()


def test_the_boot_line_names_the_slowest_imports(tmp_path):
    """Each module's own import time (less its nested imports), slowest first, and the phases."""
    from support import lb_manifest, write_app

    app = write_app(
        tmp_path / "app",
        lb_manifest(("api", "hello", "GET", "/hello")),
        {
            "api.py": "import slow_part\n\ndef hello() -> dict:\n    return {}\n",
            "slow_part.py": "import time\nimport slower_part\ntime.sleep(0.3)\n",
            "slower_part.py": "import time\ntime.sleep(0.5)\n",
        },
    )
    with Worker(app) as worker:
        worker.wait_ready()
        boot = worker.wait_log(lambda line: line["event"] == "boot")
    slowest = boot["slowest_imports_ms"]
    assert set(list(slowest)[:2]) == {"slower_part", "slow_part"} and len(slowest) <= 5
    assert slowest["slower_part"] >= 500
    assert 300 <= slowest["slow_part"] < 800  # its own 0.3 s, not the 0.5 s of the import inside it
    assert {"runtime_start", "manifest", "import", "routes"} <= set(boot["phases_ms"])
    assert boot["phases_ms"]["import"] >= 800
