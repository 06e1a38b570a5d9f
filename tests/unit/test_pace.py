"""Pace and projection arithmetic (`monitor.pace`), as the status page and `usage` use it."""

from __future__ import annotations

import pytest

from monitor.pace import format_ratio, min_elapsed, recent_rate, window_pace

NOW = 1_800_000_000.0
HOUR = 3600.0
FIVE_HOURS = 5 * HOUR
WEEK = 7 * 24 * HOUR


def test_an_even_pace_ends_at_what_it_has_used_over_the_share_passed() -> None:
    # 2 h of 5 passed (40 %), 20 % used: half an even pace, ending at 50 %.
    pace = window_pace(0.20, NOW + 3 * HOUR, FIVE_HOURS, NOW)
    assert pace is not None
    assert (pace.ratio, pace.projected) == pytest.approx((0.5, 0.5))
    assert (pace.until_reset, pace.until_full) == (3 * HOUR, None)
    assert not pace.ahead


def test_ahead_of_pace_reaches_100_percent_before_the_reset() -> None:
    # 2 h of 5 passed, 52 % used: 1.3x; the rest (48 %) at 26 % an hour takes 1 h 50 m.
    pace = window_pace(0.52, NOW + 3 * HOUR, FIVE_HOURS, NOW)
    assert pace is not None
    assert pace.ahead
    assert pace.ratio == pytest.approx(1.3)
    assert pace.projected == pytest.approx(1.3)
    assert pace.until_full == pytest.approx(2 * HOUR * 0.48 / 0.52)
    assert pace.until_full is not None and pace.until_full < pace.until_reset


def test_exactly_on_pace_to_100_percent() -> None:
    pace = window_pace(0.4, NOW + 3 * HOUR, FIVE_HOURS, NOW)
    assert pace is not None
    assert pace.ratio == pytest.approx(1.0)
    assert pace.until_full == pytest.approx(3 * HOUR)


def test_over_100_percent_is_already_full() -> None:
    pace = window_pace(1.12, NOW + HOUR, FIVE_HOURS, NOW)
    assert pace is not None
    assert pace.ratio == pytest.approx(1.12 / 0.8)
    assert pace.until_full == 0.0


def test_unused_window_has_a_pace_of_zero() -> None:
    pace = window_pace(0.0, NOW + HOUR, FIVE_HOURS, NOW)
    assert pace is not None
    assert (pace.ratio, pace.until_full) == (0.0, None)


@pytest.mark.parametrize(
    ("utilization", "resets_at", "length"),
    [
        (None, NOW + HOUR, FIVE_HOURS),  # no value
        (0.5, None, FIVE_HOURS),  # no reset time
        (0.5, NOW + HOUR, None),  # length not known
        (0.5, NOW + HOUR, 0.0),
        (0.5, NOW, FIVE_HOURS),  # the reset is due: the next poll tells
        (0.5, NOW - 60, FIVE_HOURS),
        (0.5, NOW + 6 * HOUR, FIVE_HOURS),  # more than one length away
    ],
)
def test_no_pace_without_what_it_needs(
    utilization: float | None, resets_at: float | None, length: float | None
) -> None:
    assert window_pace(utilization, resets_at, length, NOW) is None


@pytest.mark.parametrize(
    ("length", "first"),
    [(FIVE_HOURS, 15 * 60), (WEEK, HOUR), (300.0, 15.0), (20 * HOUR, HOUR)],
)
def test_no_pace_in_a_windows_first_moments(length: float, first: float) -> None:
    """min(5 % of the window, 1 h) must pass first: right after a reset the pace is noise."""
    assert min_elapsed(length) == first
    just_before = NOW + length - first + 1  # resets_at one second too far away
    assert window_pace(0.03, just_before, length, NOW) is None
    just_after = NOW + length - first - 1
    assert window_pace(0.03, just_after, length, NOW) is not None


def test_recent_rate_is_first_to_last_per_hour() -> None:
    points = [(NOW, 0.10), (NOW + 1800, 0.14), (NOW + 3600, 0.25)]
    assert recent_rate(points) == pytest.approx(0.15)
    assert recent_rate(points[:1]) is None
    assert recent_rate([]) is None
    assert recent_rate([(NOW, 0.1), (NOW + 299, 0.2)]) is None  # too close to tell


@pytest.mark.parametrize(
    ("ratio", "shown"),
    [
        (1.3, "1.3"),
        (0.95, "0.95"),
        (0.9500001, "0.95"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (12.345, "12.35"),
    ],
)
def test_a_pace_is_shown_with_the_decimals_it_needs(ratio: float, shown: str) -> None:
    assert format_ratio(ratio) == shown
