"""Poll every org's usage on an adaptive schedule.

One job per org, moved after each poll to the time `next_poll_delay` chooses. A `Limiter`
bounds the polls in flight (`[poll] concurrency`, re-read on reload), and a lock per
credential keeps orgs that share one from being polled at the same moment (the upstream
rate-limits per token). With `[proxy] shield_rate_limits` on, the `RateLimitShield` it
shares with the proxy learns of its 429s, and a credential the proxy saw limited is not
polled before its hold ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitor.config_source import ConfigSource
from monitor.failure_log import FailureLog
from monitor.jobs import JobScheduler, Work
from monitor.limiter import Limiter
from monitor.schedule import PollOutcome, PollPolicy, next_poll_delay, usage_changed
from monitor.shield import RateLimitShield
from monitor.state import PollResult, UsageStore
from monitor.targets import OrgTarget, Targets
from monitor.upstream import PollError, UpstreamClient
from monitor.usage import UsageSnapshot

log = logging.getLogger("monitor.poller")


class _CredentialLock:
    """Orgs that share a credential are polled one at a time (the upstream rate-limits
    per token); `users` counts the polls holding or waiting for the lock."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


@dataclass(slots=True)
class _Backoff:
    """What the next delay depends on, beyond the last poll's result."""

    previous_delay: float | None = None
    failure: PollResult | None = None
    failures_in_a_row: int = 0
    changed: bool = True  # did the last successful poll move any number
    retry_after: float | None = None  # from the last 429


class Poller:
    def __init__(
        self,
        config: ConfigSource,
        targets: Targets,
        store: UsageStore,
        client: UpstreamClient,
        jobs: JobScheduler,
        *,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        shield: RateLimitShield | None = None,
        on_all_polled: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._shield = shield if shield is not None else RateLimitShield(config, clock)
        self._targets = targets
        self._store = store
        self._client = client
        self._jobs = jobs
        self._clock = clock
        self._jitter = jitter
        self._limit = Limiter(lambda: config.current.poll.concurrency)
        self._locks: dict[str, _CredentialLock] = {}  # by fingerprint, while polls use them
        self._backoff: dict[str, _Backoff] = {}
        self._work: dict[str, Work] = {}
        self._policy: tuple[object, PollPolicy] | None = None  # per running `[poll]`
        self._failures = FailureLog(log, "poll", clock)
        self._scheduling = False
        # Orgs not polled yet; when the last of them has its first result, `on_all_polled`
        # is told (the daemon's heap then holds every org's long-lived state).
        self._unpolled: set[str] = set()
        self._on_all_polled = on_all_polled

    def start(self) -> None:
        """Start scheduling: every org's first poll is due now."""
        self._scheduling = True
        added = {target.uuid for target in self.apply_targets()}
        for state in self._store:  # orgs the store held before scheduling started
            if state.target.uuid not in added:
                if state.last_result is None:
                    self._unpolled.add(state.target.uuid)
                self._schedule(state.target.uuid, 0.0)

    def stop(self) -> None:
        """Schedule nothing more (the scheduler's own stop cancels polls under way)."""
        self._scheduling = False

    def config_changed(self) -> None:
        """A reload: the targets may differ and `concurrency` may have grown."""
        self._limit.wake()
        self.apply_targets()

    def apply_targets(self) -> list[OrgTarget]:
        """Make the store follow the targets: added orgs are polled at once, removed ones
        leave with their schedule; the others keep their snapshot and schedule. Returns
        the added ones."""
        added, removed = self._store.set_targets(self._targets.current())
        # Added first: the last unpolled org leaving while others arrive is not "all polled".
        self._unpolled.update(target.uuid for target in added)
        for target in removed:
            self._polled(target.uuid)
            self._backoff.pop(target.uuid, None)
            self._failures.forget(target.uuid)
            self._work.pop(target.uuid, None)
            self._jobs.cancel(_job_id(target.uuid))
        if added:
            log.info("polling %d new org(s), %d in all", len(added), len(self._store))
        # First polls are all due now: the limiter already keeps at most `concurrency` in
        # flight, so spreading them over time as well only delayed readiness.
        for target in added:
            self._schedule(target.uuid, 0.0)
        return added

    def _polled(self, org_uuid: str) -> None:
        """This org has had its first result (or is gone)."""
        if org_uuid not in self._unpolled:
            return
        self._unpolled.discard(org_uuid)
        if not self._unpolled and self._on_all_polled is not None:
            self._on_all_polled()

    def _schedule(self, org_uuid: str, delay: float) -> None:
        when = self._clock() + delay
        self._store.set_next_poll(org_uuid, when)
        if self._scheduling:
            self._jobs.schedule(_job_id(org_uuid), when, self._work_for(org_uuid))

    def _work_for(self, org_uuid: str) -> Work:
        # One closure per org, so the scheduler sees the same work and only moves the job.
        work = self._work.get(org_uuid)
        if work is None:

            async def work() -> None:
                await self._poll_job(org_uuid)

            self._work[org_uuid] = work
        return work

    async def _poll_job(self, org_uuid: str) -> None:
        held = self._held_for(self._fingerprint(org_uuid))
        if held > 0:  # the proxy saw this credential limited since this poll was scheduled
            if self._scheduling:
                self._schedule(org_uuid, held)
            return
        result = await self.poll(org_uuid)
        if result is not None and org_uuid in self._store and self._scheduling:
            self._schedule(org_uuid, self._delay_after(org_uuid, result))

    def _fingerprint(self, org_uuid: str) -> str | None:
        state = self._store.get(org_uuid)
        return None if state is None else state.target.credential.current.fingerprint

    def _held_for(self, fingerprint: str | None) -> float:
        """Seconds until the shield releases this credential (0 when it does not hold
        it)."""
        hold = None if fingerprint is None else self._shield.held(fingerprint)
        return 0.0 if hold is None else hold.until - self._clock()

    def _tell_shield(self, org_uuid: str, result: PollResult, delay: float) -> float:
        """Share what this poll learnt about its credential (as it is after the poll,
        which may have renewed it), and wait at least as long as the shield holds it."""
        fingerprint = self._fingerprint(org_uuid)
        if fingerprint is None:
            return delay
        if result is PollResult.RATE_LIMITED:
            self._shield.hold_until(fingerprint, self._clock() + delay)
        elif result is PollResult.SUCCESS:
            self._shield.release(fingerprint)
        return max(delay, self._held_for(fingerprint))

    async def poll(self, org_uuid: str) -> PollResult | None:
        """Poll one org now and record the outcome; None if the org is gone."""
        state = self._store.get(org_uuid)
        if state is None:
            return None
        target = state.target
        before = state.snapshot
        fingerprint = target.credential.current.fingerprint
        shared = self._locks.get(fingerprint)
        if shared is None:
            shared = self._locks[fingerprint] = _CredentialLock()
        shared.users += 1
        try:
            async with shared.lock, self._limit:
                started = time.monotonic()
                outcome = await self._fetch(target)
                duration = time.monotonic() - started
        finally:
            # A lock matters only while polls hold it or wait for it: 10,000 orgs with a
            # credential each would otherwise keep 10,000 idle locks.
            shared.users -= 1
            if not shared.users and self._locks.get(fingerprint) is shared:
                del self._locks[fingerprint]
        result = self._record(org_uuid, target, before, outcome, duration)
        self._polled(org_uuid)
        return result

    async def _fetch(self, target: OrgTarget) -> UsageSnapshot | PollError:
        try:
            return await self._client.fetch_usage(target)
        except PollError as exc:
            return exc
        except Exception as exc:
            # A bug must not end this org's polling: count it, log it, go on.
            log.exception("unexpected error polling org=%s", target.name)
            return PollError(
                PollResult.INVALID_RESPONSE,
                f"unexpected {type(exc).__name__} while polling (see monitor's log)",
            )

    def _record(
        self,
        org_uuid: str,
        target: OrgTarget,
        before: UsageSnapshot | None,
        outcome: UsageSnapshot | PollError,
        duration: float,
    ) -> PollResult:
        backoff = self._backoff_of(org_uuid)
        if isinstance(outcome, PollError):
            self._store.record_failure(
                org_uuid, outcome.result, outcome.message, end=self._clock(), duration=duration
            )
            backoff.retry_after = outcome.retry_after
            self._failures.failed(org_uuid, _subject(target), outcome.result, outcome.message)
            return outcome.result
        self._store.record_success(org_uuid, outcome, end=self._clock(), duration=duration)
        backoff.changed = usage_changed(before, outcome)
        if outcome.dropped != (before.dropped if before else ()):
            self._note_dropped(target, outcome)
        self._failures.succeeded(org_uuid, _subject(target))
        return PollResult.SUCCESS

    def _backoff_of(self, org_uuid: str) -> _Backoff:
        backoff = self._backoff.get(org_uuid)
        if backoff is None:
            backoff = self._backoff[org_uuid] = _Backoff()
        return backoff

    def _note_dropped(self, target: OrgTarget, snapshot: UsageSnapshot) -> None:
        """Once per change: the answer has more windows than `max_windows_per_org`."""
        if not snapshot.dropped:
            log.info("org=%s: no usage window dropped any more", target.name)
            return
        shown = ", ".join(snapshot.dropped[:5]) + (", ..." if len(snapshot.dropped) > 5 else "")
        log.warning(
            "org=%s: the usage answer has %d windows; kept %d ([poll] max_windows_per_org), "
            "dropped %d: %s",
            target.name,
            len(snapshot.windows) + len(snapshot.dropped),
            len(snapshot.windows),
            len(snapshot.dropped),
            shown,
        )

    async def poll_all(self) -> dict[str, PollResult]:
        """Poll every org once, now (`monitor usage`)."""
        uuids = [state.target.uuid for state in self._store]
        results = await asyncio.gather(*(self.poll(u) for u in uuids))
        return {u: r for u, r in zip(uuids, results, strict=True) if r is not None}

    def _delay_after(self, org_uuid: str, result: PollResult) -> float:
        backoff = self._backoff_of(org_uuid)
        policy = self._poll_policy()
        if result is PollResult.SUCCESS:
            state = self._store.get(org_uuid)
            snapshot = state.snapshot if state else None
            outcome = PollOutcome(
                result=result,
                previous_delay=None if backoff.failure is not None else backoff.previous_delay,
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
        delay = next_poll_delay(outcome, policy, self._clock(), self._jitter())
        delay = self._tell_shield(org_uuid, result, delay)
        backoff.previous_delay = delay
        return delay

    def _poll_policy(self) -> PollPolicy:
        """The running `[poll]` section's intervals, built once per (re)loaded config."""
        section = self._config.current.poll
        if self._policy is None or self._policy[0] is not section:
            policy = PollPolicy(section.interval_seconds, section.max_interval_seconds)
            self._policy = (section, policy)
        return self._policy[1]


def _job_id(org_uuid: str) -> str:
    return f"poll:{org_uuid}"


def _subject(target: OrgTarget) -> str:
    return f"org={target.name}"
