"""The resizable concurrency limit that polls and proxied requests share a pool under."""

from __future__ import annotations

import asyncio

import pytest

from monitor.limiter import Limiter


async def test_holds_at_most_capacity_and_serves_waiters_in_order() -> None:
    capacity = 2
    limiter = Limiter(lambda: capacity)
    order: list[int] = []
    release = asyncio.Event()

    async def worker(n: int) -> None:
        async with limiter:
            order.append(n)
            await release.wait()

    tasks = [asyncio.create_task(worker(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert limiter.in_flight == 2
    assert order == [0, 1]
    release.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert limiter.in_flight == 0


async def test_work_in_flight_counts_against_a_smaller_capacity() -> None:
    capacity = 3
    limiter = Limiter(lambda: capacity)
    for _ in range(3):
        await limiter.acquire()
    capacity = 1  # a reload lowered it while three are in flight
    waiter = asyncio.create_task(limiter.acquire())
    limiter.release()
    limiter.release()
    await asyncio.sleep(0)
    assert not waiter.done()  # one still in flight: the new limit is already reached
    limiter.release()
    await asyncio.wait_for(waiter, 1)
    assert limiter.in_flight == 1


async def test_a_larger_capacity_lets_waiters_in_when_woken() -> None:
    capacity = 1
    limiter = Limiter(lambda: capacity)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    capacity = 2
    limiter.wake()
    await asyncio.wait_for(waiter, 1)
    assert limiter.in_flight == 2


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    limiter = Limiter(lambda: 1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release()
    assert limiter.in_flight == 0
    await asyncio.wait_for(limiter.acquire(), 1)
    assert limiter.in_flight == 1


async def test_a_capacity_below_one_still_lets_one_in() -> None:
    limiter = Limiter(lambda: 0)
    await asyncio.wait_for(limiter.acquire(), 1)
    assert limiter.capacity == 1


async def test_try_acquire_takes_a_free_slot_and_never_jumps_the_queue() -> None:
    limiter = Limiter(lambda: 1)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()  # full
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # the slot goes to the waiter, not to the next try
    assert not limiter.try_acquire()
    await waiter
    assert limiter.in_flight == 1
