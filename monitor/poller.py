"""Poll every org's usage on an adaptive schedule, and discover orgs from accounts.

One APScheduler date job per org, re-added after each poll at the time `next_poll_delay`
chooses. A semaphore bounds polls in flight; a lock per credential keeps orgs that share
one from being polled at the same moment (the upstream rate-limits per token).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config import AccountConfig, Config
from monitor.schedule import PollOutcome, PollPolicy, next_poll_delay, usage_changed
from monitor.sharding import in_shard
from monitor.state import OrgTarget, PollResult, UsageStore, targets_from_config
from monitor.upstream import PollError, UpstreamClient

log = logging.getLogger("monitor.poller")
T = TypeVar("T")

DISCOVERY_INTERVAL_SECONDS = 3600.0
# A repeated identical failure is logged again at most this often.
REMINDER_SECONDS = 600.0


@dataclass
class _Backoff:
    previous_delay: float | None = None
    failure: PollResult | None = None
    failures_in_a_row: int = 0
    changed: bool = True  # did the last successful poll move any number
    retry_after: float | None = None  # from the last 429


@dataclass
class _LogMemory:
    result: PollResult | None = None
    logged_at: float = 0.0


@dataclass
class _Account:
    config: AccountConfig
    label: str
    discovered: list[OrgTarget] = field(default_factory=list)
    done_once: bool = False
    failures_in_a_row: int = 0


class Poller:
    def __init__(
        self,
        config: Config,
        store: UsageStore,
        client: UpstreamClient,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._client = client
        self._clock = clock
        self._jitter = jitter
        self._backoff: dict[str, _Backoff] = {}
        self._logged: dict[str, _LogMemory] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()
        self._jobs: dict[str, Job] = {}
        self._accounts: list[_Account] = []
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Take a (re)loaded config; `apply_targets` makes the store and jobs follow it."""
        self._config = config
        self._policy = PollPolicy(config.poll.interval_seconds, config.poll.max_interval_seconds)
        self._semaphore = asyncio.Semaphore(config.poll.concurrency)
        self._configured = targets_from_config(config)
        old = self._accounts
        self._accounts = [
            _Account(account, account.name or f"accounts[{index}]")
            for index, account in enumerate(config.accounts)
        ]
        # An account that stays the same keeps what it discovered, so a reload does not
        # drop and re-add its orgs.
        for new in self._accounts:
            for previous in old:
                if previous.config == new.config:
                    new.discovered, new.done_once = previous.discovered, previous.done_once

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        scheduler.start()
        self._scheduler = scheduler
        self.apply_targets()
        for index in range(len(self._accounts)):
            self._schedule_discovery(index, 0.0)

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        self._jobs.clear()
        if scheduler is not None:
            scheduler.pause()
            # Jobs the scheduler handed to its executor a moment ago are tasks that have
            # not started yet; shutting down now would cancel them inside APScheduler,
            # which logs each as an ERROR. One loop turn lets them start, register in
            # `_running` and, cancelled below, end quietly in `_tracked`.
            await asyncio.sleep(0)
        # Polls already under way would outlive the ClientSession closed after us.
        pending = [task for task in self._running if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if scheduler is not None:
            scheduler.shutdown(wait=False)

    def reload(self, config: Config) -> None:
        """Follow a new config: added orgs start polling, removed ones leave the store,
        untouched ones keep their snapshot and schedule; accounts are asked again."""
        self.configure(config)
        self.apply_targets()
        if self._scheduler is not None:
            for job in self._scheduler.get_jobs():
                if job.id.startswith("discover:"):
                    job.remove()
            for index in range(len(self._accounts)):
                self._schedule_discovery(index, 0.0)

    def pending_accounts(self) -> list[str]:
        return [a.label for a in self._accounts if not a.done_once]

    # -- targets -----------------------------------------------------------------------

    def targets(self) -> list[OrgTarget]:
        """Configured orgs, then discovered ones not configured; each org once."""
        chosen: dict[str, OrgTarget] = {}
        for target in self._configured:
            chosen.setdefault(target.uuid, target)
        for account in self._accounts:
            for target in account.discovered:
                chosen.setdefault(target.uuid, target)
        shard = self._config.poll.shard
        return [t for t in chosen.values() if in_shard(t.uuid, shard)]

    def apply_targets(self) -> None:
        added, removed = self._store.set_targets(self.targets())
        for target in removed:
            self._backoff.pop(target.uuid, None)
            self._logged.pop(target.uuid, None)
            job = self._jobs.pop(target.uuid, None)
            if job is not None and self._scheduler is not None:
                job.remove()
        if added:
            log.info("polling %d new org(s), %d in all", len(added), len(self._store))
        # First polls are all due now: the semaphore already keeps at most `concurrency`
        # in flight, so spreading them over time as well only delayed readiness (10,000
        # orgs at concurrency 100 took the 10 s spread, twice the 5 s the polls need).
        for target in added:
            self._schedule_poll(target.uuid, 0.0)

    # -- polling -----------------------------------------------------------------------

    def _schedule_poll(self, org_uuid: str, delay: float) -> None:
        when = self._clock() + delay
        self._store.set_next_poll(org_uuid, when)
        if self._scheduler is None:
            return
        run_date = datetime.fromtimestamp(when, UTC)
        job = self._jobs.get(org_uuid)
        if job is not None:
            # Moving the org's one job is about 4x cheaper than adding a new date job
            # after every poll (the bench's profile: 22 us against 80 us).
            job.modify(next_run_time=run_date)
            return
        # The daily interval is only a safety net: every poll moves the job to the time
        # `next_poll_delay` chose, long before the interval would fire it.
        self._jobs[org_uuid] = self._scheduler.add_job(
            self._poll_job,
            IntervalTrigger(hours=24, timezone=UTC),
            next_run_time=run_date,
            args=[org_uuid],
            id=org_uuid,
            name=f"poll {org_uuid}",
            replace_existing=True,
        )

    async def _tracked(self, work: Awaitable[T]) -> T | None:
        """Run a job's work where `stop()` can find and cancel it; None if it did."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await work
        except asyncio.CancelledError:
            if self._scheduler is None:  # stop() cancelled us: not an error to log
                return None
            raise
        finally:
            if task is not None:
                self._running.discard(task)

    async def _poll_job(self, org_uuid: str) -> None:
        result = await self._tracked(self.poll(org_uuid))
        if result is not None and org_uuid in self._store and self._scheduler is not None:
            self._schedule_poll(org_uuid, self._delay_after(org_uuid, result))

    async def poll(self, org_uuid: str) -> PollResult | None:
        """Poll one org now and record the outcome; None if the org is gone."""
        state = self._store.get(org_uuid)
        if state is None:
            return None
        target = state.target
        before = state.snapshot
        lock = self._locks.setdefault(target.credential.fingerprint, asyncio.Lock())
        backoff = self._backoff.setdefault(org_uuid, _Backoff())
        async with lock, self._semaphore:
            started = time.monotonic()
            failure: PollError | None = None
            try:
                snapshot = await self._client.fetch_usage(target)
            except PollError as exc:
                failure = exc
            except Exception as exc:
                # A bug must not end this org's polling: count it, log it, go on.
                log.exception("unexpected error polling org=%s", target.name)
                failure = PollError(
                    PollResult.INVALID_RESPONSE,
                    f"unexpected {type(exc).__name__} while polling (see monitor's log)",
                )
            duration = time.monotonic() - started
        if failure is not None:
            self._store.record_failure(
                org_uuid, failure.result, failure.message, end=self._clock(), duration=duration
            )
            backoff.retry_after = failure.retry_after
            self._note_failure(target, failure)
            return failure.result
        self._store.record_success(org_uuid, snapshot, end=self._clock(), duration=duration)
        backoff.changed = usage_changed(before, snapshot)
        self._note_success(target)
        return PollResult.SUCCESS

    def _delay_after(self, org_uuid: str, result: PollResult) -> float:
        backoff = self._backoff.setdefault(org_uuid, _Backoff())
        state = self._store.get(org_uuid)
        if result is PollResult.SUCCESS:
            failed_before = backoff.failure is not None
            snapshot = state.snapshot if state else None
            outcome = PollOutcome(
                result=result,
                previous_delay=None if failed_before else backoff.previous_delay,
                consecutive_failures=0,
                changed=backoff.changed,
                reset_times=tuple(snapshot.reset_times()) if snapshot else (),
            )
            backoff.failure, backoff.failures_in_a_row = None, 0
        else:
            same = backoff.failure is result
            backoff.failures_in_a_row = backoff.failures_in_a_row + 1 if same else 1
            backoff.failure = result
            outcome = PollOutcome(
                result=result,
                previous_delay=backoff.previous_delay,
                consecutive_failures=backoff.failures_in_a_row,
                retry_after=backoff.retry_after,
            )
        delay = next_poll_delay(outcome, self._policy, self._clock(), self._jitter())
        backoff.previous_delay = delay
        return delay

    # -- logs --------------------------------------------------------------------------

    def _note_failure(self, target: OrgTarget, exc: PollError) -> None:
        memory = self._logged.setdefault(target.uuid, _LogMemory())
        now = self._clock()
        if memory.result is exc.result and now - memory.logged_at < REMINDER_SECONDS:
            return
        again = " (still)" if memory.result is exc.result else ""
        log.warning(
            "poll failed%s: org=%s result=%s: %s", again, target.name, exc.result, exc.message
        )
        memory.result, memory.logged_at = exc.result, now

    def _note_success(self, target: OrgTarget) -> None:
        memory = self._logged.get(target.uuid)
        if memory is not None and memory.result is not None:
            log.info("poll recovered: org=%s (was %s)", target.name, memory.result)
            memory.result = None

    # -- discovery ---------------------------------------------------------------------

    def _schedule_discovery(self, index: int, delay: float) -> None:
        if self._scheduler is None:
            return
        self._scheduler.add_job(
            self._discovery_job,
            "date",
            run_date=datetime.fromtimestamp(self._clock() + delay, UTC),
            args=[index],
            id=f"discover:{index}",
            name=f"discover accounts[{index}]",
            replace_existing=True,
        )

    async def _discovery_job(self, index: int) -> None:
        ok = await self._tracked(self.discover(index))
        if ok is None:
            return
        account = self._accounts[index] if index < len(self._accounts) else None
        if account is None:
            return
        if ok:
            delay = DISCOVERY_INTERVAL_SECONDS
        else:
            steps = min(account.failures_in_a_row - 1, 8)
            delay = min(self._policy.interval * 2.0**steps, DISCOVERY_INTERVAL_SECONDS)
        self._schedule_discovery(index, delay)

    async def discover(self, index: int) -> bool:
        """Ask one account for its orgs; keep the previous list if the upstream fails."""
        account = self._accounts[index]
        cfg = account.config
        base_url = cfg.base_url or self._config.upstream.base_url
        credential = cfg.credential()
        try:
            found = await self._client.fetch_bootstrap(base_url + cfg.bootstrap_path, credential)
        except PollError as exc:
            account.failures_in_a_row += 1
            account.done_once = True
            log.warning(
                "discovery failed: account=%s result=%s: %s", account.label, exc.result, exc.message
            )
            return False
        usage_path = cfg.usage_path or self._config.upstream.usage_path
        account.discovered = [
            OrgTarget(
                uuid=org.uuid,
                name=org.name or org.uuid,
                base_url=base_url,
                usage_path=usage_path,
                credential=credential,
                origin=f"account {account.label}",
            )
            for org in found
        ]
        account.done_once = True
        account.failures_in_a_row = 0
        log.info("discovered %d org(s) for account=%s", len(found), account.label)
        self.apply_targets()
        return True

    async def discover_all(self) -> None:
        await asyncio.gather(*(self.discover(i) for i in range(len(self._accounts))))

    async def poll_all(self, org_uuids: Sequence[str] | None = None) -> dict[str, PollResult]:
        """Poll every org (or the given ones) once, now; for `monitor usage`."""
        uuids = list(org_uuids) if org_uuids is not None else [s.target.uuid for s in self._store]
        results = await asyncio.gather(*(self.poll(u) for u in uuids))
        return {u: r for u, r in zip(uuids, results, strict=True) if r is not None}
