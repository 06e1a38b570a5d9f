"""The rate-limit shield as plain calls, time driven by a `FakeClock`: how long a 429
holds a credential (the poller's back-off, from `schedule`), what releases it, and that
it keeps nothing while it is off."""

from __future__ import annotations

import pytest

from monitor.config_source import ConfigSource
from monitor.schedule import RATE_LIMIT_CEILING_SECONDS
from monitor.shield import MAX_CREDENTIALS, RateLimitShield
from monitor.usage_cache import StoredAnswer
from tests.support.clock import FakeClock
from tests.support.config import make_config

FINGERPRINT = "bearer:0123456789abcdef"
POLL = {"interval_seconds": 60, "max_interval_seconds": 300}
LIMITED = StoredAnswer(429, "Too Many Requests", (("Retry-After", "0"),), b"{}", 0.0)


def shield(clock: FakeClock, *, on: bool = True, jitter: float = 0.0) -> RateLimitShield:
    config = make_config(
        "http://127.0.0.1:9",
        poll=POLL,
        proxy={"shield_rate_limits": on},
    )
    return RateLimitShield(ConfigSource(config, loaded_at=clock()), clock, lambda: jitter)


def test_a_positive_retry_after_holds_that_long() -> None:
    clock = FakeClock(1000.0)
    held = shield(clock)
    assert held.limited(FINGERPRINT, 120.0, LIMITED) == 1120.0
    hold = held.held(FINGERPRINT)
    assert hold is not None and hold.answer is LIMITED
    clock.advance(119.9)
    assert held.held(FINGERPRINT) is not None
    clock.advance(0.1)
    assert held.held(FINGERPRINT) is None


def test_retry_after_zero_backs_off_exponentially_from_the_max_interval() -> None:
    clock = FakeClock(1000.0)
    held = shield(clock)
    ends = []
    for _ in range(6):
        until = held.limited(FINGERPRINT, 0.0, LIMITED)
        assert until is not None
        ends.append(until - clock())
        clock.now = until  # the hold ran out; the next read is limited again
    assert ends == [300.0, 600.0, 1200.0, 2400.0, RATE_LIMIT_CEILING_SECONDS, 3600.0]


def test_jitter_only_shortens_a_hold_as_the_poller_would() -> None:
    clock = FakeClock(1000.0)
    until = shield(clock, jitter=0.999).limited(FINGERPRINT, None, LIMITED)
    assert until is not None and 1000.0 + 0.8 * 300.0 <= until < 1300.0


def test_a_200_releases_and_starts_the_back_off_over() -> None:
    clock = FakeClock(1000.0)
    held = shield(clock)
    held.limited(FINGERPRINT, 0.0, LIMITED)
    held.release(FINGERPRINT)
    assert held.held(FINGERPRINT) is None
    assert held.limited(FINGERPRINT, 0.0, LIMITED) == 1300.0


def test_the_pollers_429_holds_as_long_as_it_waits_keeping_a_relayed_answer() -> None:
    clock = FakeClock(1000.0)
    held = shield(clock)
    held.hold_until(FINGERPRINT, 1500.0)
    hold = held.held(FINGERPRINT)
    assert hold is not None and hold.until == 1500.0 and hold.answer is None
    held.limited(FINGERPRINT, 60.0, LIMITED)  # shorter than the poller's: the longer holds
    hold = held.held(FINGERPRINT)
    assert hold is not None and hold.until == 1500.0 and hold.answer is LIMITED


def test_off_it_keeps_and_holds_nothing() -> None:
    clock = FakeClock(1000.0)
    held = shield(clock, on=False)
    assert held.limited(FINGERPRINT, 120.0, LIMITED) is None
    held.hold_until(FINGERPRINT, 2000.0)
    assert held.held(FINGERPRINT) is None and len(held) == 0


@pytest.mark.parametrize("extra", [1, 10])
def test_it_remembers_a_bounded_number_of_credentials(extra: int) -> None:
    clock = FakeClock(1000.0)
    held = shield(clock)
    for n in range(MAX_CREDENTIALS + extra):
        held.hold_until(f"bearer:{n:016x}", 2000.0 + n)
    assert len(held) == MAX_CREDENTIALS
    assert held.held("bearer:0000000000000000") is None  # the soonest to end went first
    assert held.held(f"bearer:{MAX_CREDENTIALS + extra - 1:016x}") is not None


def test_turned_off_by_a_reload_it_forgets_every_hold() -> None:
    clock = FakeClock(1000.0)
    config = make_config("http://127.0.0.1:9", poll=POLL, proxy={"shield_rate_limits": True})
    source = ConfigSource(config, loaded_at=clock())
    held = RateLimitShield(source, clock, lambda: 0.0)
    held.limited(FINGERPRINT, 120.0, LIMITED)
    off = make_config("http://127.0.0.1:9", poll=POLL, proxy={"shield_rate_limits": False})
    source.replace(off, at=clock())
    assert held.held(FINGERPRINT) is None and len(held) == 0
    source.replace(config, at=clock())
    assert held.held(FINGERPRINT) is None  # back on: the old hold does not come back
