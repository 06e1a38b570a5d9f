"""A concurrency limit whose capacity can change while work holds it.

`asyncio.Semaphore` fixes its size at creation; replacing it on a reload would let the
work already in flight under the old one go uncounted. Here the capacity is read each
time a slot is given out, and what is in flight always counts against it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType


class Limiter:
    def __init__(self, capacity: Callable[[], int]) -> None:
        self._capacity = capacity
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> int:
        return max(1, self._capacity())

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for one; never waits."""
        if self._waiters:
            self.wake()
        if not self._waiters and self._in_flight < self.capacity:
            self._in_flight += 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot, first come first served."""
        if self.try_acquire():
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # the slot came just as we were cancelled: pass it on
            elif granted in self._waiters:  # wake() drops cancelled waiters itself
                self._waiters.remove(granted)
            raise

    def release(self) -> None:
        self._in_flight -= 1
        self.wake()

    def wake(self) -> None:
        """Hand free slots to waiters; also call it after the capacity grew."""
        while self._waiters and self._in_flight < self.capacity:
            granted = self._waiters.popleft()
            if not granted.done():
                self._in_flight += 1
                granted.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
