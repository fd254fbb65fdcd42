"""Handler deadlines in process: one watchdog cancels what runs past its deadline, nothing else."""

from __future__ import annotations

import asyncio

import pytest

from runtime.deadlines import DeadlineExceeded, Deadlines


async def _forever(cancelled: list[str], name: str = "work") -> None:
    """Work that never ends by itself; records its cancellation."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(name)
        raise


async def _value() -> int:
    await asyncio.sleep(0)
    return 7


def test_without_a_deadline_the_work_is_just_awaited():
    assert asyncio.run(Deadlines().run(_value(), None)) == 7


def test_work_done_within_its_deadline_returns_its_value():
    assert asyncio.run(Deadlines().run(_value(), 60)) == 7


def test_work_past_its_deadline_is_cancelled_and_raises_deadline_exceeded():
    cancelled: list[str] = []

    async def main():
        with pytest.raises(DeadlineExceeded):
            await Deadlines().run(_forever(cancelled), 0.05)
        # The cancellation was consumed: the task goes on awaiting normally.
        await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None and getattr(task, "cancelling", lambda: 0)() == 0  # Python 3.11+

    asyncio.run(main())
    assert cancelled == ["work"]


def test_only_the_task_past_its_deadline_is_cancelled():
    cancelled: list[str] = []
    deadlines = Deadlines()

    async def one(name: str, seconds: float, release: asyncio.Event) -> str:
        async def work():
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.append(name)
                raise
            return name

        try:
            return await deadlines.run(work(), seconds)
        except DeadlineExceeded:
            return f"{name} timed out"

    async def main():
        release = asyncio.Event()
        short = asyncio.create_task(one("short", 0.05, release))
        long = asyncio.create_task(one("long", 60, release))
        assert await short == "short timed out"
        release.set()
        assert await long == "long"

    asyncio.run(main())
    assert cancelled == ["short"]


def test_a_cancellation_from_elsewhere_is_not_a_deadline():
    cancelled: list[str] = []

    async def main():
        task = asyncio.create_task(Deadlines().run(_forever(cancelled), 60))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cancelled == ["work"]


def test_an_error_inside_the_work_passes_through():
    async def broken():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(Deadlines().run(broken(), 60))


def test_one_deadlines_object_keeps_working_in_a_new_event_loop():
    """The watchdog belongs to a loop; a Deadlines used again under another loop starts a new one."""
    deadlines = Deadlines()
    for _ in range(2):
        cancelled: list[str] = []

        async def main(cancelled=cancelled):
            with pytest.raises(DeadlineExceeded):
                await deadlines.run(_forever(cancelled), 0.05)

        asyncio.run(main())
        assert cancelled == ["work"]
