"""The fast subset of `make test-adversarial` (tests/adversarial/): the raw-payload corpus and a
few seconds of mixed soak directly against each server, then the worker back to its baseline."""

from __future__ import annotations

import pytest
from adversarial.harness import back_to_baseline, footprint, run_corpus, soak, warm_up
from adversarial.run import SYNC_THREADS, WORKER_ENV
from support import CORE_APP, Worker

HOST = "127.0.0.1"


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_hostile_input_and_load_leave_no_desync_and_no_leak(server):
    with Worker(CORE_APP, env={**WORKER_ENV, "FLASH_SERVER": server}) as worker:
        worker.wait_ready()
        pid = worker.proc.pid
        # What the worker creates lazily (pool threads, the first connections' state) exists now.
        warm_up(HOST, worker.port, SYNC_THREADS)
        _, baseline = back_to_baseline(HOST, worker.port, pid, footprint(HOST, worker.port, pid))

        results = run_corpus(HOST, worker.port)
        assert not [(r.name, r.problems, r.statuses) for r in results if r.problems]
        assert all(r.fresh_connection == "served" for r in results)

        stats = soak(HOST, worker.port, pid, seconds=4)
        assert stats.requests > 0 and not stats.lost and not stats.mismatched, (
            stats.lost,
            stats.mismatched,
        )
        assert set(stats.kinds) == {"json", "get", "sync", "bad-body", "abandoned-stream", "slow"}

        back, after = back_to_baseline(HOST, worker.port, pid, baseline)
        assert back, f"before: {baseline}; after: {after}"
        worker.stop()
        assert not [line for line in worker.logs() if line["level"] in ("error", "critical")], (
            worker.output()[-3000:]
        )
