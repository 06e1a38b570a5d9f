"""A `JobScheduler` the test drives: jobs run only when the test moves the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from monitor.jobs import Work
from tests.support.clock import FakeClock


class ManualJobs:
    """Runs due jobs when `advance` (or `run_due`) is awaited, in time order, each job
    once per `schedule`, as the daemon's scheduler would at those clock readings."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.jobs: dict[str, tuple[float, Work]] = {}
        self.started = False
        self.runs: list[str] = []  # job ids in the order they ran

    def start(self) -> None:
        self.started = True

    def schedule(self, job_id: str, when: float, work: Work) -> None:
        if self.started:
            self.jobs[job_id] = (when, work)

    def cancel(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    async def stop(self) -> None:
        self.started = False
        self.jobs.clear()

    def due(self) -> list[str]:
        now = self.clock()
        return sorted((j for j, (when, _) in self.jobs.items() if when <= now), key=self.when)

    def when(self, job_id: str) -> float:
        return self.jobs[job_id][0]

    async def run_due(self, rounds: int = 100) -> int:
        """Run every job due now, together, then those they made due; returns how many."""
        ran = 0
        for _ in range(rounds):
            due = self.due()
            if not due:
                return ran
            works = [self.jobs.pop(job_id)[1] for job_id in due]
            self.runs.extend(due)
            await asyncio.gather(*(work() for work in works))
            ran += len(works)
        raise AssertionError(f"jobs still due after {rounds} rounds: {self.due()}")

    async def advance(self, seconds: float) -> int:
        """Move the clock forward by `seconds`, running jobs at their times on the way."""
        target = self.clock() + seconds
        ran = await self.run_due()
        while True:
            upcoming = [when for when, _ in self.jobs.values() if when <= target]
            if not upcoming:
                break
            self.clock.now = max(self.clock.now, min(upcoming))
            ran += await self.run_due()
        self.clock.now = target
        return ran + await self.run_due()

    async def advance_until(
        self, condition: Callable[[], bool], what: str, *, step: float = 0.5, within: float = 600
    ) -> float:
        """Move the clock `step` seconds at a time (running what falls due) until
        `condition()` holds; fail naming `what` after `within` seconds of the test's time.
        Returns how far the clock moved."""
        moved = 0.0
        while not condition():
            if moved >= within:
                raise AssertionError(f"gave up after {within:g} s of test time waiting for {what}")
            await self.advance(step)
            moved += step
        return moved
