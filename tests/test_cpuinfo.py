"""py-cpuinfo inside an app: the same answer as py-cpuinfo's own probe, without its clock sleep."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
from support import Worker, lb_manifest, write_app

APP = """
import cpuinfo
from cpuinfo import cpuinfo as module

INFO = cpuinfo.get_cpu_info()  # at import, as runpod's rp_debugger does


def info() -> dict:
    return {"info": INFO, "again": cpuinfo.get_cpu_info() == INFO,
            "probe": getattr(module.get_cpu_info_json, "__flash_probe__", False)}
"""


def reference_info() -> dict:
    """What py-cpuinfo answers on its own in a plain interpreter (it sleeps about 1 s to do so)."""
    code = "import json, cpuinfo; print(json.dumps(cpuinfo.get_cpu_info()))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_the_app_gets_py_cpuinfos_own_answer_from_the_fast_probe(tmp_path):
    app = write_app(
        tmp_path / "app", lb_manifest(("probe", "info", "GET", "/info")), {"probe.py": APP}
    )
    with Worker(app) as worker:
        worker.wait_ready(timeout=60)
        body = httpx.get(worker.url + "/info", timeout=10).json()
    assert body["probe"] is True and body["again"] is True
    expected = reference_info()
    assert body["info"]["brand_raw"] == expected["brand_raw"]
    assert body["info"] == expected


def test_fast_cpuinfo_can_be_turned_off(tmp_path):
    app = write_app(
        tmp_path / "app", lb_manifest(("probe", "info", "GET", "/info")), {"probe.py": APP}
    )
    with Worker(app, env={"FLASH_FAST_CPUINFO": "0"}) as worker:
        worker.wait_ready(timeout=60)
        body = httpx.get(worker.url + "/info", timeout=10).json()
    assert body["probe"] is False
    assert body["info"]["brand_raw"] == reference_info()["brand_raw"]
