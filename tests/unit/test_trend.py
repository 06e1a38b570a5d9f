"""An org's windows followed across snapshots: recent readings (`history`) and lengths
(`trend`), as the store feeds them."""

from __future__ import annotations

import itertools

import pytest

from monitor.history import POINTS, SPAN_SECONDS, History
from monitor.trend import MAX_ABSENT, Trends
from monitor.usage import UsageSnapshot, UsageWindow

T0 = 1_800_000_000.0
HOUR = 3600.0


def snapshot(*windows: tuple[str, float | None, float | None]) -> UsageSnapshot:
    return UsageSnapshot(windows=tuple(UsageWindow(*w) for w in windows), extra=None)


def test_history_keeps_a_fixed_number_of_points_over_the_span() -> None:
    history = History()
    for minute in range(10 * 60):  # ten hours of polls, one a minute
        history.add(T0 + minute * 60, minute / 1000)
    points = history.points()
    assert len(points) <= POINTS
    last_time, last_value = points[-1]
    assert last_time == T0 + 599 * 60  # the latest reading is always there
    assert last_value == pytest.approx(0.599)
    assert last_time - points[0][0] <= SPAN_SECONDS
    spacing = SPAN_SECONDS / (POINTS - 1)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(points[:-1])]
    assert min(gaps) >= spacing
    # and the span is covered: its oldest point is at most one spacing (and poll) short
    assert points[0][0] <= last_time - SPAN_SECONDS + spacing + 60


def test_history_span_shrinks_to_a_short_window() -> None:
    history = History()
    for second in range(0, 600, 5):
        history.add(T0 + second, second / 600, span=300.0)
    points = history.points()
    assert points[-1][0] - points[0][0] <= 300
    assert len(points) > 20


def test_history_readings_in_the_same_instant_and_from_the_past() -> None:
    history = History()
    history.add(T0, 0.1)
    history.add(T0, 0.2)  # two answers in the same instant: the later stands
    history.add(T0 - 60, 0.9)  # older than what is kept: ignored
    ((at, value),) = history.points()
    assert at == T0
    assert value == pytest.approx(0.2)
    history.clear()
    assert len(history) == 0


def test_history_times_stay_exact_over_a_week_without_a_reset() -> None:
    """Times are kept as float32 seconds after the oldest reading: still to the
    millisecond after a week of polls, and two answers in one instant are one point."""
    history = History()
    at = T0
    for _ in range(7 * 24 * 60):
        at += 60.0
        history.add(at, 0.5)
    history.add(at + 0.0001, 0.6)  # a relayed answer in the same instant as the poll
    points = history.points()
    last_at, last_value = points[-1]
    assert last_at == pytest.approx(at, abs=0.01)
    assert last_value == pytest.approx(0.6)
    for t, _ in points[:-1]:  # every time still on the minute the poll was at
        assert abs((t - T0) / 60 - round((t - T0) / 60)) < 0.01 / 60
    assert at - points[0][0] <= SPAN_SECONDS
    assert history.base == points[0][0]


def test_a_reset_clears_the_readings_and_teaches_the_length() -> None:
    trends = Trends()
    period = 2 * HOUR
    resets = T0 + 1800
    for minute in range(0, 5 * 60 + 1, 5):
        now = T0 + minute * 60
        while resets <= now:
            resets += period
        trends.follow(snapshot(("claude_code", (now - resets + period) / period, resets)), now)
        trend = trends.get("claude_code")
        assert trend is not None
        times = [t for t, _ in trend.history.points()]
        assert min(times) >= resets - period  # never a reading of the previous cycle
    assert trends.length("claude_code") == period  # resets at 0:30, 2:30, 4:30 agree
    assert trends.length("five_hour") == 5 * HOUR  # documented, seen or not
    assert trends.length("codename") is None


def test_null_utilization_adds_no_reading() -> None:
    trends = Trends()
    trends.follow(snapshot(("five_hour", None, None)), T0)
    trend = trends.get("five_hour")
    assert trend is not None
    assert len(trend.history) == 0


def test_a_window_that_disappears_and_comes_back() -> None:
    """It keeps its learned length but not its readings, and the time it was away does
    not count as a period."""
    trends = Trends()
    for k, now in enumerate((T0, T0 + 605, T0 + 1205)):
        trends.follow(snapshot(("tangelo", 0.1 * k, T0 + 600 * (k + 1))), now)
    assert trends.length("tangelo") == 600.0
    trends.follow(snapshot(("five_hour", 0.5, T0 + HOUR)), T0 + 1300)
    gone = trends.get("tangelo")
    assert gone is not None
    assert len(gone.history) == 0
    assert [t.name for t in trends] == ["tangelo", "five_hour"]
    # back 2 h later: its reset time moved by many periods, which teaches nothing
    trends.follow(snapshot(("tangelo", 0.05, T0 + 9000)), T0 + 8500)
    back = trends.get("tangelo")
    assert back is not None
    assert back.length == 600.0
    assert back.learner.step is None
    ((at, value),) = back.history.points()
    assert at == T0 + 8500
    assert value == pytest.approx(0.05)


def test_windows_long_gone_are_forgotten() -> None:
    trends = Trends()
    for n in range(MAX_ABSENT + 5):
        trends.follow(snapshot((f"codename_{n}", 0.1, None)), T0 + n)
    names = [t.name for t in trends]
    assert len(names) == MAX_ABSENT + 1  # the one present, and the last MAX_ABSENT gone
    assert names[-1] == f"codename_{MAX_ABSENT + 4}"
    assert "codename_0" not in names
