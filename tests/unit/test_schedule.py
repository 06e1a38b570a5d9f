"""next_poll_delay: a pure function of what the last poll said."""

from __future__ import annotations

import pytest

from monitor.schedule import (
    JITTER_FRACTION,
    RATE_LIMIT_CEILING_SECONDS,
    RESET_GRACE_SECONDS,
    PollOutcome,
    PollPolicy,
    next_poll_delay,
    usage_changed,
)
from monitor.state import PollResult
from monitor.usage import ExtraUsage, UsageSnapshot, UsageWindow

NOW = 1_800_000_000.0
POLICY = PollPolicy(interval=60.0, max_interval=300.0)
# Results that back off from the interval (a rate limit and an expired credential do not).
FAILURES = [
    r
    for r in PollResult
    if r not in (PollResult.SUCCESS, PollResult.RATE_LIMITED, PollResult.CREDENTIAL_EXPIRED)
]


def success(previous: float | None, *, changed: bool, resets: tuple[float, ...] = ()) -> float:
    outcome = PollOutcome(
        PollResult.SUCCESS,
        previous_delay=previous,
        consecutive_failures=0,
        changed=changed,
        reset_times=resets,
    )
    return next_poll_delay(outcome, POLICY, NOW, 0.5)


def failure(
    result: PollResult, in_a_row: int, jitter: float = 0.0, retry_after: float | None = None
) -> float:
    outcome = PollOutcome(
        result, previous_delay=None, consecutive_failures=in_a_row, retry_after=retry_after
    )
    return next_poll_delay(outcome, POLICY, NOW, jitter)


# -- success -----------------------------------------------------------------------------


def test_first_poll_and_a_change_poll_again_at_the_interval() -> None:
    assert success(None, changed=False) == 60.0  # the first poll has nothing to compare
    assert success(None, changed=True) == 60.0
    assert success(240.0, changed=True) == 60.0  # a change snaps back from a long delay


def test_no_change_doubles_up_to_the_max() -> None:
    delays = []
    previous = 60.0
    for _ in range(5):
        previous = success(previous, changed=False)
        delays.append(previous)
    assert delays == [120.0, 240.0, 300.0, 300.0, 300.0]


def test_a_short_previous_delay_still_doubles_from_the_interval() -> None:
    # After a reset the delay may have been shorter than the interval's double.
    assert success(10.0, changed=False) == 120.0


def test_a_reset_within_the_delay_polls_shortly_after_it() -> None:
    reset = NOW + 200.0
    delay = success(240.0, changed=False, resets=(NOW + 10_000.0, reset))
    assert delay == 200.0 + RESET_GRACE_SECONDS
    assert NOW + delay > reset


def test_a_reset_right_now_never_polls_below_the_interval() -> None:
    assert success(240.0, changed=False, resets=(NOW + 1.0,)) == 60.0
    assert success(None, changed=True, resets=(NOW + 0.5,)) == 60.0


def test_resets_in_the_past_or_beyond_the_delay_change_nothing() -> None:
    assert success(60.0, changed=False, resets=(NOW - 5.0, NOW + 10_000.0, NOW)) == 120.0


def test_the_earliest_of_several_resets_wins() -> None:
    delay = success(300.0, changed=False, resets=(NOW + 250.0, NOW + 100.0, NOW + 200.0))
    assert delay == 100.0 + RESET_GRACE_SECONDS


# -- rate limits ------------------------------------------------------------------------


@pytest.mark.parametrize("jitter", [0.0, 0.999])
def test_429_with_retry_after_waits_that_long(jitter: float) -> None:
    assert failure(PollResult.RATE_LIMITED, 1, jitter, retry_after=120.0) == 120.0
    assert failure(PollResult.RATE_LIMITED, 5, jitter, retry_after=7200.0) == 7200.0


def test_429_with_a_tiny_retry_after_still_waits_the_interval() -> None:
    assert failure(PollResult.RATE_LIMITED, 1, retry_after=0.5) == 60.0


@pytest.mark.parametrize("retry_after", [0.0, None])
def test_429_limited_backs_off_from_max_interval_to_an_hour(retry_after: float | None) -> None:
    delays = [failure(PollResult.RATE_LIMITED, n, 0.0, retry_after) for n in range(1, 9)]
    assert delays == [300.0, 600.0, 1200.0, 2400.0, 3600.0, 3600.0, 3600.0, 3600.0]
    assert failure(PollResult.RATE_LIMITED, 10_000, 0.0, retry_after) == (
        RATE_LIMIT_CEILING_SECONDS
    )


@pytest.mark.parametrize("in_a_row", [1, 2, 3, 4, 5, 50])
def test_429_limited_jitter_only_shortens_within_bounds(in_a_row: int) -> None:
    longest = failure(PollResult.RATE_LIMITED, in_a_row, 0.0, 0.0)
    shortest = failure(PollResult.RATE_LIMITED, in_a_row, 0.999, 0.0)
    assert shortest < longest
    assert shortest >= longest * (1 - JITTER_FRACTION)
    assert shortest >= POLICY.interval
    assert longest <= RATE_LIMIT_CEILING_SECONDS


def test_429_limited_with_a_max_interval_above_an_hour_uses_it() -> None:
    policy = PollPolicy(interval=60.0, max_interval=7200.0)
    outcome = PollOutcome(PollResult.RATE_LIMITED, None, 3, retry_after=0.0)
    assert next_poll_delay(outcome, policy, NOW, 0.0) == 7200.0


# -- other failures ---------------------------------------------------------------------


@pytest.mark.parametrize("result", FAILURES)
def test_other_failures_double_from_the_interval_to_the_max(result: PollResult) -> None:
    delays = [failure(result, n) for n in range(1, 7)]
    assert delays == [60.0, 120.0, 240.0, 300.0, 300.0, 300.0]


@pytest.mark.parametrize("result", FAILURES)
def test_other_failures_are_jittered_but_never_below_the_interval(result: PollResult) -> None:
    for in_a_row in (1, 2, 3, 4, 100):
        longest = failure(result, in_a_row, 0.0)
        shortest = failure(result, in_a_row, 0.999)
        assert POLICY.interval <= shortest <= longest <= POLICY.max_interval
        assert shortest >= longest * (1 - JITTER_FRACTION)
    assert failure(result, 4, 0.999) < failure(result, 4, 0.0)


def test_a_failure_ignores_retry_after_unless_it_is_a_429() -> None:
    assert failure(PollResult.SERVER_ERROR, 1, retry_after=900.0) == 60.0


# -- what counts as a change ------------------------------------------------------------


def snap(percent: float | None, used: float | None = 10.0) -> UsageSnapshot:
    utilization = None if percent is None else percent / 100
    return UsageSnapshot(
        windows=(UsageWindow("five_hour", utilization, NOW + 100),),
        extra=ExtraUsage(True, 100.0, used),
    )


def test_usage_changed() -> None:
    assert usage_changed(None, snap(1.0))
    assert not usage_changed(snap(1.0), snap(1.0))
    assert usage_changed(snap(1.0), snap(2.0))
    assert usage_changed(snap(1.0), snap(None))
    assert usage_changed(snap(1.0, used=10.0), snap(1.0, used=11.0))


def test_an_expired_credential_is_looked_at_again_after_the_interval() -> None:
    for failures in (1, 5, 30):
        assert failure(PollResult.CREDENTIAL_EXPIRED, failures) == POLICY.interval
