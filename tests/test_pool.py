"""`def` handlers run in a pool of FLASH_SYNC_THREADS threads, never on the event loop."""

from __future__ import annotations

import threading
import time

import httpx

from support import CORE_APP
from support import Worker


def test_ping_answers_while_every_pool_thread_is_busy():
    threads = 4
    with Worker(CORE_APP, env={"FLASH_SYNC_THREADS": str(threads)}) as worker:
        worker.wait_ready()
        results: list = []

        def call() -> None:
            results.append(httpx.post(worker.url + "/slow-sync", json={"seconds": 3}, timeout=30))

        # Twice as many blocking calls as threads: the pool is full and has a queue.
        callers = [threading.Thread(target=call) for _ in range(threads * 2)]
        for caller in callers:
            caller.start()
        time.sleep(0.5)
        for _ in range(10):
            start = time.monotonic()
            ping = httpx.get(worker.url + "/ping", timeout=1.0)
            assert ping.status_code == 200
            assert time.monotonic() - start < 1.0
            # async handlers keep answering too
            assert httpx.post(worker.url + "/scalars", json={"y": 1}, timeout=1.0).status_code == 200
            time.sleep(0.1)
        for caller in callers:
            caller.join(30)
        assert [r.status_code for r in results] == [200] * (threads * 2)
        used = {r.json()["thread"] for r in results}
        assert len(used) == threads  # exactly the configured number of threads served them
