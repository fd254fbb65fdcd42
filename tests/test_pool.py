"""`def` handlers run in a pool of FLASH_SYNC_THREADS threads, never on the event loop."""

from __future__ import annotations

import httpx
from support import Worker, hold_app, marks, post_in_background, wait_marks


def test_ping_and_async_handlers_answer_while_every_pool_thread_is_busy(tmp_path):
    threads = 4
    release = tmp_path / "release"
    env = {"FLASH_SYNC_THREADS": str(threads), "FLASH_METRICS": "1", "HOLD_RELEASE": str(release)}
    with Worker(hold_app(tmp_path / "app"), env=env) as worker:
        worker.wait_ready()
        # Twice as many blocking calls as threads: the pool is full and has a queue.
        callers = [post_in_background(worker.url + "/hang") for _ in range(threads * 2)]
        worker.wait_gauges(in_flight=threads * 2)
        wait_marks(release, "/hang", threads)
        for _ in range(10):
            assert httpx.get(worker.url + "/ping", timeout=10).status_code == 200
            # async handlers keep answering too
            assert httpx.post(worker.url + "/quick-async", json={}, timeout=10).json() == {
                "quick": "async"
            }
        # Every thread was still held meanwhile, and no queued call had found a thread.
        assert marks(release, "/hang") == threads
        assert all(results == [] for _, results in callers)
        release.touch()
        for caller, _ in callers:
            caller.join(30)
        responses = [results[0] for _, results in callers]
        assert [r.status_code for r in responses] == [200] * (threads * 2)
        used = {r.json()["thread"] for r in responses}
        assert len(used) == threads  # exactly the configured number of threads served them
