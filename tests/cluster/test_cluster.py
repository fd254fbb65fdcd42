"""Workers behind HAProxy under load: rolling restart, crash, and a worker that boots slowly.

Each scenario prints `scenario: sent=N ok=N failed=N` to the terminal (also under capture).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cluster.cluster import EXAMPLE_APP, Cluster, default_app, find_haproxy
from cluster.load import Call, Load, Report

TEST_APP = Path(__file__).resolve().parent / "app"
CHECK_INTERVAL = 1.0  # `inter 1s` in cluster/haproxy.cfg.tmpl

if find_haproxy() is None and os.environ.get("CI", "").lower() not in ("1", "true"):
    pytest.skip(
        "haproxy is not installed (bash cluster/setup.sh installs it)", allow_module_level=True
    )


@pytest.fixture(autouse=True)
def haproxy_installed() -> None:
    # Reached only in CI without haproxy: there it is a failure, not a skip.
    if find_haproxy() is None:
        pytest.fail("haproxy is not installed: .ci/run must run cluster/setup.sh")


@pytest.fixture
def clusters(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture):
    """Make clusters; stop them after the test, and keep their logs only if it failed."""
    made: list[Cluster] = []
    failed_before = request.session.testsfailed

    def make(app: Path, **options: object) -> Cluster:
        made.append(Cluster(app, **options))
        return made[-1]

    yield make
    for cluster in made:
        cluster.stop()
        if request.session.testsfailed > failed_before:
            with capsys.disabled():
                print(f"\ncluster logs kept in {cluster.workdir}")
        else:
            cluster.cleanup()


@pytest.fixture
def report_line(capsys: pytest.CaptureFixture):
    def emit(scenario: str, report: Report, **extra: object) -> None:
        details = "".join(f" {key}={value}" for key, value in extra.items())
        with capsys.disabled():
            print(f"\n{report.line(scenario)}{details}", flush=True)

    return emit


def app_calls(app: Path) -> list[Call]:
    """A mix of the app's routes: the example app's, or flash-demo's when it stands in."""
    if app.resolve() == EXAMPLE_APP.resolve():
        return [
            Call("POST", "/echo", {"message": "hi", "repeat": 2}),
            Call("POST", "/sum", {"numbers": [1, 2, 3.5]}),
            Call("GET", "/items/7?verbose=true"),
            Call("GET", "/health"),
        ]
    return [Call("POST", "/process", {"input_data": {"n": 1}}), Call("GET", "/health")]


def test_rolling_restart_under_load_fails_no_request(clusters, report_line) -> None:
    app = default_app()
    cluster = clusters(app, workers=3)
    with cluster:
        load = Load(
            cluster.url, app_calls(app), concurrency=8, max_requests=60000, max_seconds=90
        ).start()
        load.running_for(1.0)
        exits = cluster.rolling_restart(timeout=60)
        load.running_for(1.0)
        report = load.stop()
        restarted = {name: cluster.log_records(name, generation=2) for name in cluster.slots}
    report_line(
        "rolling_restart",
        report,
        workers=3,
        retried_by_haproxy=cluster.retried_requests(),
        drain_seconds="/".join(f"{e.seconds:.1f}" for e in exits),
    )

    assert report.failed == 0, report.describe_failures()
    assert report.sent >= 300, "the load loop hardly ran"
    assert [(e.signal, e.returncode) for e in exits] == [("SIGTERM", 0)] * 3
    for name, records in restarted.items():
        served = [r for r in records if r.get("event") == "request"]
        assert served, f"the new {name} never served a request"


def test_crashed_worker_loses_only_its_requests_in_flight(clusters, report_line) -> None:
    cluster = clusters(TEST_APP, workers=3)
    with cluster:
        load = Load(
            cluster.url,
            [Call("POST", "/work", {"ms": 200}), Call("GET", "/wait?ms=200")],
            concurrency=12,
            max_requests=20000,
            max_seconds=60,
        ).start()
        load.running_for(1.5)
        in_flight = int(cluster.stats()["w2"]["scur"])
        killed_at = time.monotonic()
        cluster.kill("w2")
        removed_after = cluster.wait_status("w2", "DOWN", timeout=10)
        load.running_for(2.0)
        cluster.start_worker("w2")
        cluster.wait_status("w2", "UP", timeout=60)
        back_at = time.monotonic()
        load.running_for(1.0)
        report = load.stop()
    report_line(
        "crash",
        report,
        in_flight_on_killed=in_flight,
        retried_by_haproxy=cluster.retried_requests(),
        removed_after_s=f"{removed_after:.2f}",
        failed_get=sum(o.call.method == "GET" for o in report.failures),
        failures=f"[{report.describe_failures()}]",
    )

    # Only what was on the dead worker when it died may fail; every later request is
    # sent (or, after a refused connect, re-sent) to a live worker.
    late = [o for o in report.failures if o.start >= killed_at]
    assert not late, (
        f"{len(late)} requests sent after the kill failed: {report.describe_failures()}"
    )
    # A GET in flight on the dead worker is replayed on another one (retry-on empty-response);
    # a POST is not, since its handler may have run.
    assert all(o.call.method == "POST" for o in report.failures), report.describe_failures()
    assert report.failed <= load.concurrency, report.describe_failures()
    assert removed_after <= CHECK_INTERVAL + 0.5
    assert report.sent - report.failed >= 100
    assert any(o.worker == "w2" and o.start > back_at for o in report.outcomes), (
        "the replacement worker got no traffic"
    )


def test_booting_worker_gets_no_traffic_before_ready(clusters, report_line) -> None:
    cluster = clusters(TEST_APP, workers=2, spare=("booting",))
    with cluster:
        load = Load(
            cluster.url,
            [Call("POST", "/work", {"ms": 20}), Call("GET", "/health")],
            concurrency=8,
            max_requests=30000,
            max_seconds=60,
        ).start()
        load.running_for(0.5)
        slot = cluster.start_worker(
            "booting",
            env={
                "FLASH_STARTUP_HOOK": "cluster_app:slow_start",
                "CLUSTER_APP_STARTUP_SECONDS": "3",
            },
        )
        statuses = []  # (ping status, HAProxy's view) while the worker boots
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # HAProxy's view first: UP followed by a 204 would mean traffic while booting.
            view = cluster.status("booting")
            try:
                ping = httpx.get(slot.url + "/ping", timeout=2).status_code
            except httpx.TransportError:
                ping = None
            statuses.append((ping, view))
            if ping == 200:
                break
            time.sleep(0.1)
        cluster.wait_status("booting", "UP", timeout=10)
        load.running_for(1.5)
        report = load.stop()
        records = cluster.log_records("booting")
    events = [r.get("event") for r in records]
    assert "ready" in events, events
    before_ready = events[: events.index("ready")].count("request")
    after_ready = events[events.index("ready") :].count("request")
    report_line("booting_worker", report, before_ready=before_ready, after_ready=after_ready)

    assert (204, "DOWN") in statuses, f"never saw the worker booting: {statuses}"
    assert all(view == "DOWN" for ping, view in statuses if ping != 200), statuses
    assert before_ready == 0
    assert after_ready > 0, "the worker never got traffic once ready"
    assert report.failed == 0, report.describe_failures()


def test_execute_is_refused_through_the_proxy(clusters) -> None:
    """A worker with the development /execute endpoint on, behind the project's HAProxy: the
    proxy connects from loopback but names the client (`option forwardfor`), so /execute is
    refused to what comes through it while the worker's own loopback clients still reach it."""
    cluster = clusters(TEST_APP, workers=1, env={"FLASH_ENABLE_EXECUTE": "1"})
    with cluster:
        cluster.wait_status("w1", "UP", timeout=30)
        body = {
            "function_name": "f",
            "function_code": "def f():\n    return 1\n",
            "args": [],
            "kwargs": {},
        }
        through_proxy = httpx.post(cluster.url + "/execute", json=body, timeout=10)
        direct = httpx.post(cluster.slots["w1"].url + "/execute", json=body, timeout=10)
    assert through_proxy.status_code == 403
    assert direct.status_code == 200 and direct.json()["success"] is True
