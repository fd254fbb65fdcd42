"""Admission control: how many requests run handlers at once, and how many may wait for a slot."""

from __future__ import annotations

import asyncio
import collections

from .errors import Overloaded


class Limiter:
    """A counting semaphore with a bounded, first-come-first-served waiting line.

    `capacity` 0 means no cap: `acquire` never waits. A slot is given back by `release`, which
    the caller invokes when the handler's work has really ended (for a `def` handler: when its
    thread returns, even after the request itself timed out).
    """

    def __init__(self, capacity: int, max_pending: int, max_wait: float = 0.0):
        self.capacity = capacity
        self.max_pending = max_pending
        self.max_wait = max_wait or None  # seconds a request may wait in line; 0 = no bound
        self.active = 0
        self.held_past_deadline = 0  # slots kept by `def` handlers that timed out and still run
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def pending(self) -> int:
        return len(self._waiters)

    @property
    def exhausted(self) -> bool:
        """Every slot is held by a handler that outlived its deadline: no request can run."""
        return 0 < self.capacity <= self.held_past_deadline

    def release_when_done(self, future: asyncio.Future[object]) -> None:
        """Keep the slot of a timed-out `def` handler until its thread really returns."""
        self.held_past_deadline += 1

        def done(_: object) -> None:
            self.held_past_deadline -= 1
            self.release()

        future.add_done_callback(done)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, without waiting (the usual case, without a coroutine)."""
        if self.capacity == 0 or (self.active < self.capacity and not self._waiters):
            self.active += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in line for one; Overloaded when the line is full or the wait too long."""
        if self.try_acquire():
            return
        if len(self._waiters) >= self.max_pending:
            raise Overloaded
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.max_wait)
        except asyncio.TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot arrived with the deadline: keep it
            self._waiters.remove(waiter)
            waiter.cancel()
            raise Overloaded from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as this waiter was cancelled
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self.active -= 1
