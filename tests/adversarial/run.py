"""`make test-adversarial`: hostile input, load and faults against the real entrypoint.

Under Hypercorn and under uvicorn, directly and through HAProxy (cluster/): the raw-payload corpus
with probes after each payload, then a mixed soak of SOAK_SECONDS (each of the four soaks); then,
directly, faults: SIGTERM under load, handlers that hang, stdout closed. After the direct corpus
and soak the worker must be back to its baseline (nothing in flight, no slot taken, no thread or
file descriptor more than after the warm-up). Prints a summary; exits 1 on any lost or mismatched
request, desync, failed fault, worker not back to baseline, or RSS growth over RSS_LIMIT_MIB in the
second half of a soak.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent)]

from support import CORE_APP, ENTRYPOINT, Worker, base_env  # noqa: E402

from adversarial.harness import (  # noqa: E402
    SoakStats,
    back_to_baseline,
    footprint,
    probe_fresh,
    read_answers,
    run_corpus,
    soak,
    warm_up,
)

SYNC_THREADS = 4
WORKER_ENV = {
    "FLASH_METRICS": "1",
    "FLASH_HEADER_TIMEOUT": "2",
    "FLASH_BODY_TIMEOUT": "2",
    "FLASH_MAX_BODY_BYTES": "1048576",
    "FLASH_MAX_HEADER_BYTES": "16384",
    "FLASH_MAX_HEADERS": "100",
    "FLASH_SYNC_THREADS": str(SYNC_THREADS),
    "FLASH_MAX_CONCURRENCY": "16",
    "LOG_LEVEL": "WARNING",
}
HOST = "127.0.0.1"


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    payloads: int = 0
    desyncs: int = 0
    lost: int = 0
    mismatched: int = 0
    faults: int = 0
    faults_survived: int = 0

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def fail(self, text: str) -> None:
        self.say("  FAIL " + text)
        self.failures.append(text)


def corpus_phase(report: Report, label: str, port: int) -> None:
    results = run_corpus(HOST, port)
    report.payloads += len(results)
    bad = [r for r in results if r.problems]
    report.desyncs += sum(any("desync" in p for p in r.problems) for r in bad)
    served_same = sum(r.same_connection == "served" for r in results)
    report.say(
        f"  corpus {label}: {len(results)} payloads, {served_same} same-connection probes served, "
        f"{sum(r.fresh_connection == 'served' for r in results)} fresh probes served, {len(bad)} with problems"
    )
    for result in bad:
        report.fail(f"{label} {result.name}: {result.problems} (answers {result.statuses})")


def soak_phase(report: Report, label: str, port: int, pid: int, seconds: float) -> SoakStats:
    stats = soak(HOST, port, pid, seconds)
    report.requests += stats.requests
    report.seconds += stats.seconds
    report.lost += len(stats.lost)
    report.mismatched += len(stats.mismatched)
    rss = stats.rss_kib
    # The first half warms up (allocator arenas, caches); a worker that leaks keeps growing in the second.
    growth_mib = (rss[-1] - rss[len(rss) // 2]) / 1024
    report.say(
        f"  soak {label}: {stats.requests} requests in {stats.seconds:.1f} s ({stats.rps:.0f} rps) "
        f"{dict(stats.kinds)}; lost {len(stats.lost)}, mismatched {len(stats.mismatched)}; "
        f"RSS {rss[0] // 1024} MiB -> {rss[len(rss) // 2] // 1024} MiB at half time -> {rss[-1] // 1024} MiB"
    )
    for item in (stats.lost + stats.mismatched)[:10]:
        report.fail(f"{label}: {item}")
    if stats.lost or stats.mismatched:
        report.fail(f"{label}: {len(stats.lost)} lost, {len(stats.mismatched)} mismatched")
    limit = float(os.environ.get("RSS_LIMIT_MIB", "8"))
    if growth_mib > limit:
        report.fail(
            f"{label}: RSS grew {growth_mib:.1f} MiB in the soak's second half (RSS_LIMIT_MIB={limit:g})"
        )
    return stats


def direct(report: Report, server: str, seconds: float) -> None:
    with Worker(CORE_APP, env={**WORKER_ENV, "FLASH_SERVER": server}) as worker:
        worker.wait_ready()
        pid = worker.proc.pid
        warm_up(HOST, worker.port, SYNC_THREADS)
        _, baseline = back_to_baseline(HOST, worker.port, pid, footprint(HOST, worker.port, pid))
        corpus_phase(report, f"{server} direct", worker.port)
        soak_phase(report, f"{server} direct", worker.port, pid, seconds)
        ok, after = back_to_baseline(HOST, worker.port, pid, baseline)
        report.say(f"  baseline {server}: before {baseline}; after the abuse {after}")
        if not ok:
            report.fail(f"{server}: not back to baseline within 30 s")
        worker.stop()
        errors = [line for line in worker.logs() if line.get("level") in ("error", "critical")]
        report.say(f"  {server} direct: {len(errors)} error lines logged")


def through_haproxy(report: Report, server: str, seconds: float) -> None:
    from cluster.cluster import Cluster, find_haproxy

    if find_haproxy() is None:
        report.fail("haproxy not installed (make cluster-setup)")
        return
    cluster = Cluster(app=CORE_APP, workers=1, env={**WORKER_ENV, "FLASH_SERVER": server}).start()
    try:
        corpus_phase(report, f"{server} via HAProxy", cluster.port)
        soak_phase(
            report, f"{server} via HAProxy", cluster.port, cluster.slots["w1"].proc.pid, seconds
        )
    finally:
        cluster.stop()


# --- faults -----------------------------------------------------------------------------------------


def _post(port: int, path: str, body: dict, timeout: float = 30) -> tuple[str, object]:
    """One POST on a new connection: ("refused", None) when the connect fails, ("answered", answer)
    or ("lost", reason) once the request was sent."""
    data = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: fault\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    try:
        sock = socket.create_connection((HOST, port), timeout=10)
    except OSError:
        return "refused", None
    with sock:
        try:
            sock.sendall(request)
            answers, _ = read_answers(sock, want=1, timeout=timeout)
        except OSError as exc:
            return "lost", repr(exc)
    return ("answered", answers[0]) if answers else ("lost", "no answer")


def fault_sigterm(report: Report, server: str) -> None:
    """SIGTERM while clients keep sending: every request sent is answered, then new connections are
    refused, and the process exits 0."""
    env = {
        **WORKER_ENV,
        "FLASH_SERVER": server,
        "FLASH_DRAIN_QUIET": "0.5",
        "FLASH_GRACEFUL_TIMEOUT": "20",
    }
    with Worker(CORE_APP, env=env) as worker:
        worker.wait_ready()
        counts = {"sent": 0, "answered": 0, "refused": 0}
        lost: list[str] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            n = 0
            while True:
                n += 1
                slow = n % 5 == 0
                y = index * 1_000_000 + n
                outcome, value = _post(
                    worker.port,
                    "/slow-async" if slow else "/scalars",
                    {"seconds": 0.5} if slow else {"y": y},
                )
                with lock:
                    if outcome == "refused":
                        counts["refused"] += 1
                        return
                    counts["sent"] += 1
                    if outcome == "lost":
                        lost.append(str(value))
                    elif value.status != 200 or (not slow and value.json().get("y") != y):
                        lost.append(f"{value.status} {value.body[:100]!r}")
                    else:
                        counts["answered"] += 1

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while (
            counts["answered"] < 50 and time.monotonic() < deadline
        ):  # the load is on before the signal
            time.sleep(0.05)
        worker.signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        code = worker.wait_exit(60)
    survived = not lost and code == 0
    _fault(
        report,
        survived,
        f"SIGTERM under load ({server}): {counts['sent']} sent, {counts['answered']} answered, "
        f"{len(lost)} lost, new connections refused after the drain, exit {code}",
    )
    report.lost += len(lost)
    for item in lost[:10]:
        report.fail(f"SIGTERM {server}: {item}")


def fault_hang(report: Report, server: str) -> None:
    """`def` handlers that outlive FLASH_REQUEST_TIMEOUT take every pool thread, and an `async` one
    hangs: each gets 504, /ping says defunct while the pool is gone and healthy once it is back,
    and async routes are served throughout."""
    env = {
        **WORKER_ENV,
        "FLASH_SERVER": server,
        "FLASH_REQUEST_TIMEOUT": "1",
        "FLASH_SYNC_THREADS": "2",
    }
    with Worker(CORE_APP, env=env) as worker:
        worker.wait_ready()
        results: list = []
        hung = [
            threading.Thread(
                target=lambda: results.append(_post(worker.port, "/slow-sync", {"seconds": 4}))
            )
            for _ in range(2)
        ]
        hung.append(
            threading.Thread(
                target=lambda: results.append(_post(worker.port, "/slow-async", {"seconds": 60}))
            )
        )
        for thread in hung:
            thread.start()
        notes = []
        try:
            worker.wait_status(
                503, timeout=15
            )  # defunct: both pool threads run past their deadline
            notes.append("defunct while stuck")
        except AssertionError:
            notes.append("never defunct")
        meanwhile = _post(worker.port, "/scalars", {"y": 7})
        for thread in hung:
            thread.join(30)
        statuses = sorted(answer.status for outcome, answer in results if outcome == "answered")
        worker.wait_status(200, timeout=15)  # the threads returned: healthy again
        after = _post(worker.port, "/slow-sync", {"seconds": 0})
    survived = (
        statuses == [504, 504, 504]
        and meanwhile[0] == "answered"
        and meanwhile[1].status == 200
        and after[0] == "answered"
        and after[1].status == 200
        and notes == ["defunct while stuck"]
    )
    _fault(
        report,
        survived,
        f"hanging handlers ({server}): 504s {statuses}, {notes[0]}, async served meanwhile, "
        f"healthy and serving after",
    )


def fault_closed_stdout(report: Report, server: str) -> None:
    """The log's reader goes away (stdout closed): the worker keeps serving and still drains."""
    env = {
        **base_env(CORE_APP),
        "LOG_FORMAT": "json",
        **WORKER_ENV,
        "FLASH_SERVER": server,
        "LOG_LEVEL": "INFO",
    }
    port = int(env["PORT"])
    proc = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while probe_fresh(HOST, port) != "served":
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the worker never served")
            time.sleep(0.1)
        proc.stdout.close()  # nobody reads the log any more
        answers = [_post(port, "/boom", {"x": 1})] + [
            _post(port, "/scalars", {"y": i}) for i in range(20)
        ]
        served = sum(
            1
            for outcome, a in answers[1:]
            if outcome == "answered" and a.status == 200 and a.json()["y"] >= 0
        )
        boom = answers[0][1].status if answers[0][0] == "answered" else answers[0][0]
        fresh = probe_fresh(HOST, port)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    survived = served == 20 and boom == 500 and fresh == "served"
    _fault(
        report,
        survived,
        f"stdout closed ({server}): {served}/20 served, the failing handler got {boom}, "
        f"probe {fresh}, exit {code} after SIGTERM",
    )


def _fault(report: Report, survived: bool, text: str) -> None:
    report.faults += 1
    report.faults_survived += survived
    if survived:
        report.say("  fault survived: " + text)
    else:
        report.fail("fault: " + text)


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "15"))
    servers = os.environ.get("ADVERSARIAL_SERVERS", "hypercorn uvicorn").split()
    report = Report()
    started = time.monotonic()
    report.say(
        f"make test-adversarial: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"SOAK_SECONDS={seconds:g} per soak, servers {', '.join(servers)}"
    )
    for server in servers:
        report.say(f"{server}:")
        direct(report, server, seconds)
        through_haproxy(report, server, seconds)
        fault_sigterm(report, server)
        fault_hang(report, server)
        fault_closed_stdout(report, server)
    rps = report.requests / report.seconds if report.seconds else 0
    print()
    print("Summary")
    print(
        f"  load held: {report.requests} soak requests in {report.seconds:.0f} s of soak ({rps:.0f} rps)"
    )
    print(
        f"  bad inputs tried: {report.payloads} raw payloads ({report.payloads // max(1, 2 * len(servers))} "
        f"shapes x {len(servers)} servers x direct/HAProxy), {report.desyncs} desync"
    )
    print(f"  faults survived: {report.faults_survived}/{report.faults}")
    print(f"  lost: {report.lost}, mismatched: {report.mismatched}, desync: {report.desyncs}")
    for line in report.lines:
        if line.startswith("  soak "):
            print(
                "  RSS "
                + line.split(":", 1)[0].replace("  soak ", "")
                + ": "
                + line.rsplit("RSS ", 1)[1]
            )
    print(f"  took {time.monotonic() - started:.0f} s; {len(report.failures)} failures")
    for failure in report.failures:
        print("  - " + failure)
    print("RESULT: " + ("FAIL" if report.failures else "PASS"))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
