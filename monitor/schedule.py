"""When to poll an org next: a pure function of what the last poll said.

- Success and usage moved (or the first poll): poll again at `interval_seconds`.
- Success and nothing moved: double the last delay, up to `max_interval_seconds`.
- A window resets before that: poll shortly after the reset (never sooner than the
  interval), so the drop to 0 shows promptly.
- 429 with `Retry-After` > 0: wait that long. With 0 or none ("limited", which can last
  hours): back off exponentially from `max_interval_seconds` up to an hour, with jitter.
- The credential is known to have expired (nothing was sent): look again after the
  interval, so a renewal is picked up promptly.
- Any other failure: back off exponentially from `interval_seconds` to the max, jittered.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.state import PollResult
from monitor.usage import UsageSnapshot

RATE_LIMIT_CEILING_SECONDS = 3600.0
# After a reset, give the upstream a moment to roll the window over before looking.
RESET_GRACE_SECONDS = 5.0
# Jitter shortens a back-off by up to this fraction, so orgs limited together spread out.
JITTER_FRACTION = 0.2


@dataclass(frozen=True)
class PollPolicy:
    interval: float
    max_interval: float
    rate_limit_ceiling: float = RATE_LIMIT_CEILING_SECONDS


@dataclass(frozen=True)
class PollOutcome:
    result: PollResult
    previous_delay: float | None  # the delay that led to this poll; None for the first
    consecutive_failures: int  # failures of the same kind in a row, this one included
    changed: bool = True  # on success: did any window's utilization move
    reset_times: tuple[float, ...] = ()  # on success: every window's resets_at
    retry_after: float | None = None  # on 429


def usage_changed(before: UsageSnapshot | None, after: UsageSnapshot) -> bool:
    if before is None:
        return True
    return before.utilizations() != after.utilizations() or before.extra != after.extra


def next_poll_delay(outcome: PollOutcome, policy: PollPolicy, now: float, jitter: float) -> float:
    """Seconds from `now` until the next poll. `jitter` is a random number in [0, 1)."""
    if outcome.result is PollResult.SUCCESS:
        return _after_success(outcome, policy, now)
    if outcome.result is PollResult.CREDENTIAL_EXPIRED:
        # Nothing was sent: look again at the interval, so a renewed credential is used
        # within one interval of appearing.
        return policy.interval
    shorten = 1.0 - JITTER_FRACTION * jitter
    steps = max(0, outcome.consecutive_failures - 1)
    if outcome.result is PollResult.RATE_LIMITED:
        if outcome.retry_after is not None and outcome.retry_after > 0:
            return max(outcome.retry_after, policy.interval)
        ceiling = max(policy.rate_limit_ceiling, policy.max_interval)
        delay = min(policy.max_interval * 2.0 ** min(steps, 32), ceiling)
        return max(delay * shorten, policy.interval)
    delay = min(policy.interval * 2.0 ** min(steps, 32), policy.max_interval)
    return max(delay * shorten, policy.interval)


def _after_success(outcome: PollOutcome, policy: PollPolicy, now: float) -> float:
    if outcome.changed or outcome.previous_delay is None:
        delay = policy.interval
    else:
        delay = min(max(outcome.previous_delay, policy.interval) * 2.0, policy.max_interval)
    upcoming = [t for t in outcome.reset_times if now < t < now + delay]
    if upcoming:
        delay = max(min(upcoming) - now + RESET_GRACE_SECONDS, policy.interval)
    return delay
