"""The limiter in process: slots, the bounded waiting line, slots held past a deadline, and the
DEFUNCT state /ping reports when every slot is held so."""

from __future__ import annotations

import asyncio

import pytest
import structlog

from runtime.errors import Overloaded
from runtime.health import Health, HealthState
from runtime.limits import Limiter


def run(coro):
    """Run a test's coroutine; a limiter that never hands a slot over fails the test instead of hanging it."""
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _settle() -> None:
    """Let every task that can run do so (waiters reach the line, handed-over slots land)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_no_cap_never_waits():
    async def main():
        limiter = Limiter(0, max_pending=0)
        for _ in range(1000):
            await limiter.acquire()
        assert (limiter.active, limiter.pending, limiter.exhausted) == (1000, 0, False)

    run(main())


def test_a_free_slot_is_taken_without_waiting_and_a_full_limiter_refuses_try_acquire():
    limiter = Limiter(2, max_pending=5)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()
    assert limiter.active == 2
    limiter.release()
    assert limiter.active == 1 and limiter.try_acquire()


def test_waiters_get_slots_first_come_first_served_and_a_release_hands_the_slot_over():
    async def main():
        limiter = Limiter(1, max_pending=5)
        await limiter.acquire()
        order: list[int] = []

        async def wait(n: int) -> None:
            await limiter.acquire()
            order.append(n)

        tasks = [asyncio.create_task(wait(n)) for n in range(3)]
        await _settle()
        assert limiter.pending == 3 and order == []
        # A newcomer does not jump the line, even at the moment a slot is handed over.
        limiter.release()
        assert not limiter.try_acquire()
        await _settle()
        assert order == [0] and limiter.active == 1 and limiter.pending == 2
        limiter.release()
        limiter.release()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2] and limiter.active == 1
        limiter.release()
        assert limiter.active == 0

    run(main())


def test_a_full_line_refuses_at_once():
    async def main():
        limiter = Limiter(1, max_pending=2)
        await limiter.acquire()
        waiters = [asyncio.create_task(limiter.acquire()) for _ in range(2)]
        await _settle()
        with pytest.raises(Overloaded):
            await limiter.acquire()
        assert limiter.pending == 2
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert limiter.pending == 0 and limiter.active == 1

    run(main())


def test_no_line_at_all_refuses_when_every_slot_is_busy():
    async def main():
        limiter = Limiter(1, max_pending=0)
        await limiter.acquire()
        with pytest.raises(Overloaded):
            await limiter.acquire()

    run(main())


def test_the_wait_in_line_is_bounded_and_the_waiter_leaves_the_line():
    async def main():
        limiter = Limiter(1, max_pending=5, max_wait=0.05)
        await limiter.acquire()
        with pytest.raises(Overloaded):
            await limiter.acquire()  # nobody releases: the bound ends the wait
        assert limiter.pending == 0
        limiter.release()
        assert limiter.active == 0  # the slot was not handed to the waiter that left

    run(main())


def test_a_cancelled_waiter_leaves_the_line_without_taking_a_slot():
    async def main():
        limiter = Limiter(1, max_pending=5)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await _settle()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert limiter.pending == 0
        limiter.release()
        assert limiter.active == 0

    run(main())


def test_a_slot_held_past_its_deadline_is_kept_until_the_work_ends_then_handed_on():
    async def main():
        limiter = Limiter(1, max_pending=5)
        await limiter.acquire()
        work: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        limiter.release_when_done(work)
        assert (limiter.held_past_deadline, limiter.exhausted, limiter.active) == (1, True, 1)
        waiter = asyncio.create_task(limiter.acquire())
        await _settle()
        assert not waiter.done() and limiter.pending == 1
        work.set_result(None)  # the thread returned
        await waiter
        assert (limiter.held_past_deadline, limiter.exhausted, limiter.active, limiter.pending) == (
            0,
            False,
            1,
            0,
        )

    run(main())


def test_exhausted_only_when_every_slot_is_held_past_its_deadline():
    async def main():
        limiter = Limiter(2, max_pending=5)
        loop = asyncio.get_running_loop()
        await limiter.acquire()
        await limiter.acquire()
        first, second = loop.create_future(), loop.create_future()
        limiter.release_when_done(first)
        assert (
            not limiter.exhausted
        )  # one slot may still come back from a request within its deadline
        limiter.release_when_done(second)
        assert limiter.exhausted
        first.set_result(None)
        await _settle()
        assert not limiter.exhausted and limiter.active == 1

    run(main())


def test_no_cap_is_never_exhausted():
    async def main():
        limiter = Limiter(0, max_pending=5)
        await limiter.acquire()
        limiter.release_when_done(asyncio.get_running_loop().create_future())
        assert not limiter.exhausted

    run(main())


# --- health: DEFUNCT while the limiter is exhausted ---------------------------------------------


def test_ping_reports_defunct_while_every_slot_is_held_and_ready_once_one_returns():
    async def main():
        limiter = Limiter(1, max_pending=5)
        health = Health()
        health.capacity_lost = lambda: limiter.exhausted  # as boot wires it (with the pool's own)
        health.state = HealthState.READY
        await limiter.acquire()
        work = asyncio.get_running_loop().create_future()
        with structlog.testing.capture_logs() as logs:
            assert health.current() is HealthState.READY
            limiter.release_when_done(work)
            assert health.current() is HealthState.DEFUNCT
            assert health.current() is HealthState.DEFUNCT
            work.set_result(None)
            await _settle()
            assert health.current() is HealthState.READY
        events = [line["event"] for line in logs]
        # Each change is logged once, however often /ping asks.
        assert events == [
            "capacity lost: every slot or handler thread runs past its deadline",
            "capacity back: a stuck handler returned",
        ]
        assert health.state is HealthState.READY  # the reported state is derived, not stored

    run(main())


@pytest.mark.parametrize("state", [HealthState.STARTING, HealthState.DRAINING])
def test_only_a_ready_worker_turns_defunct(state):
    health = Health()
    health.capacity_lost = lambda: True
    health.state = state
    assert health.current() is state


def test_in_flight_count_and_idle_time(monkeypatch):
    import runtime.health

    now = [100.0]
    monkeypatch.setattr(runtime.health.time, "monotonic", lambda: now[0])
    health = Health()
    health.request_started()
    health.request_started()
    now[0] = 105.0
    assert health.in_flight == 2 and health.idle_for() == 0.0
    health.request_finished()
    assert health.idle_for() == 0.0  # one is still in flight
    health.request_finished()
    now[0] = 107.5
    assert health.in_flight == 0 and health.idle_for() == 2.5  # since the last one ended
