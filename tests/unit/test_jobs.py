"""The job scheduler seam: APScheduler in the daemon, a test-driven one in the tests."""

from __future__ import annotations

import asyncio
import time

import pytest

from monitor.jobs import APSchedulerJobs, Work
from tests.support.clock import FakeClock
from tests.support.jobs import ManualJobs
from tests.support.waiting import until


async def test_apscheduler_runs_moves_and_cancels_jobs() -> None:
    jobs = APSchedulerJobs()
    ran: list[str] = []

    async def work_a() -> None:
        ran.append("a")

    async def work_b() -> None:
        ran.append("b")

    jobs.start()
    try:
        jobs.schedule("a", time.time() + 3600, work_a)
        jobs.schedule("a", time.time(), work_a)  # moved: due now
        jobs.schedule("b", time.time(), work_b)
        jobs.cancel("b")
        await until(lambda: ran == ["a"], "job a to run")
    finally:
        await jobs.stop()
    assert not jobs.started


async def test_apscheduler_stop_cancels_work_under_way() -> None:
    jobs = APSchedulerJobs()
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)
        finished.set()

    jobs.start()
    jobs.schedule("slow", time.time(), slow)
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.wait_for(jobs.stop(), 5)
    assert not finished.is_set()


async def test_manual_jobs_run_in_time_order_as_the_clock_moves() -> None:
    clock = FakeClock(1000.0)
    jobs = ManualJobs(clock)
    jobs.start()
    seen: list[tuple[str, float]] = []

    def job(name: str, every: float | None = None) -> None:
        async def work() -> None:
            seen.append((name, clock()))
            if every is not None:
                jobs.schedule(name, clock() + every, work)

        jobs.schedule(name, clock() + (every or 5.0), work)

    job("tick", every=2.0)
    job("once")
    assert await jobs.advance(5.0) == 3
    assert seen == [("tick", 1002.0), ("tick", 1004.0), ("once", 1005.0)]
    assert clock() == 1005.0
    assert jobs.when("tick") == 1006.0


async def test_apscheduler_drops_jobs_scheduled_before_it_starts() -> None:
    jobs = APSchedulerJobs()
    ran: list[str] = []

    def job(name: str) -> Work:
        async def work() -> None:
            ran.append(name)

        return work

    jobs.schedule("early", time.time(), job("early"))  # not started: nothing to run it
    jobs.start()
    try:
        jobs.schedule("due", time.time(), job("due"))
        await until(lambda: ran, "the due job to run")
    finally:
        await jobs.stop()
    assert ran == ["due"]


async def test_apscheduler_does_not_swallow_a_cancellation_from_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only stop() ends a job quietly; a job cancelled by anything else says so."""
    jobs = APSchedulerJobs()

    async def cancelled() -> None:
        raise asyncio.CancelledError

    jobs.start()
    try:
        jobs.schedule("cancelled", time.time(), cancelled)
        await until(lambda: "raised an exception" in caplog.text, "APScheduler to see it")
    finally:
        await jobs.stop()
    assert "CancelledError" in caplog.text
