"""Window lengths: documented ones, and lengths learned from sequences of polls."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.window_length import (
    FIVE_HOURS,
    SEVEN_DAYS,
    LengthLearner,
    agree,
    documented_length,
    observe,
    window_length,
)

T0 = 1_800_000_000.0
HOUR = 3600.0


def run(readings: Iterable[tuple[float, float | None]]) -> tuple[LengthLearner, list[bool]]:
    """Feed (poll time, resets_at) readings in order; the learner and each new-cycle flag."""
    learner = LengthLearner()
    cycles = []
    for now, resets_at in readings:
        learner, new_cycle = observe(learner, resets_at, now)
        cycles.append(new_cycle)
    return learner, cycles


def periodic(
    period: float, polls_every: float, until: float, first_reset: float = T0 + 600
) -> Iterator[tuple[float, float]]:
    """Polls every `polls_every` s from T0 to `until` of a window resetting every `period`."""
    now = T0
    while now <= until:
        passed = max(0, int((now - first_reset) // period) + 1)
        yield now, first_reset + passed * period
        now += polls_every


@pytest.mark.parametrize(
    ("window", "length"),
    [
        ("five_hour", FIVE_HOURS),
        ("seven_day", SEVEN_DAYS),
        ("seven_day_opus", SEVEN_DAYS),
        ("seven_day_oauth_apps", SEVEN_DAYS),
        ("seven_day_anything_new", SEVEN_DAYS),
        ("claude_code", None),
        ("seven_days", None),
        ("iguana_necktie", None),
    ],
)
def test_documented_lengths(window: str, length: float | None) -> None:
    assert documented_length(window) == length
    assert window_length(window, None) == length


def test_a_documented_length_wins_over_what_was_seen() -> None:
    seen = LengthLearner(learned=600.0)
    assert window_length("five_hour", seen) == FIVE_HOURS
    assert window_length("claude_code", seen) == 600.0


def test_a_regular_window_is_learned_at_its_second_reset() -> None:
    readings = list(periodic(HOUR, 60, T0 + 600 + HOUR - 30))
    after_first, cycles = run(readings)
    assert cycles.count(True) == 2  # the first reading, then the reset at T0 + 600
    assert after_first.learned is None  # one step is not yet a length
    assert after_first.step == HOUR
    learner, _ = run(list(periodic(HOUR, 60, T0 + 600 + 2 * HOUR + 30)))
    assert learner.learned == HOUR


def test_jittered_reset_times_still_agree() -> None:
    """The upstream's reset times wobble by seconds between polls and by up to 20 s from
    one cycle to the next: the length is still learned, as the mean of the steps."""
    readings = []
    jitter = [0.0, 17.0, -12.0, 20.0, 3.0]
    for cycle in range(4):
        resets_at = T0 + (cycle + 1) * HOUR + jitter[cycle]
        start = T0 + cycle * HOUR + jitter[cycle - 1] if cycle else T0
        for minute in range(0, 60, 2):
            now = start + 30 + minute * 60
            wobble = 0.7 if minute % 4 else -0.4  # the same reset, seen twice differently
            if now < resets_at:
                readings.append((now, resets_at + wobble))
    learner, _ = run(readings)
    assert learner.learned is not None
    assert abs(learner.learned - HOUR) <= 20


def test_irregular_resets_are_not_a_length_until_two_agree() -> None:
    """Steps of 1 h, 1.5 h, 40 min: nothing agrees; then 40 min twice more: learned."""
    resets = [T0 + 600, T0 + 600 + HOUR, T0 + 600 + 2.5 * HOUR]
    resets += [resets[-1] + 2400, resets[-1] + 4800, resets[-1] + 7200]
    readings = []
    for previous, current in itertools.pairwise(resets):
        readings.append((previous - 60, previous))
        readings.append((previous + 5, current))
    learner, cycles = run(readings[:6])
    assert learner.learned is None
    learner, cycles = run(readings)
    assert learner.learned == 2400.0
    assert cycles.count(True) == 1 + len(resets) - 1


def test_one_irregular_reset_does_not_undo_a_learned_length() -> None:
    learner = LengthLearner(resets_at=T0, step=HOUR, learned=HOUR)
    learner, new_cycle = observe(learner, T0 + 2.5 * HOUR, T0 + 10)  # an odd step
    assert new_cycle
    assert learner.learned == HOUR
    learner, _ = observe(learner, T0 + 3.5 * HOUR, T0 + 2.5 * HOUR + 10)  # regular again
    assert learner.learned == HOUR
    learner, _ = observe(learner, T0 + 5 * HOUR, T0 + 3.5 * HOUR + 10)
    learner, _ = observe(learner, T0 + 6.5 * HOUR, T0 + 5 * HOUR + 10)
    assert learner.learned == 1.5 * HOUR  # two in a row agree on a new period


def test_a_window_that_never_resets_is_never_learned() -> None:
    fixed, _ = run((T0 + minute * 60, T0 + 30 * 86400) for minute in range(600))
    assert fixed.learned is None
    assert fixed.step is None
    unused, cycles = run((T0 + minute * 60, None) for minute in range(600))
    assert unused == LengthLearner()
    assert not any(cycles)


def test_a_reset_time_that_slides_ahead_is_not_a_reset() -> None:
    """resets_at = now + 5 h at every poll (a rolling window): it moves forward, but
    always before it was due, so no step is ever measured."""
    polls = [T0 + n * 90 for n in range(400)]
    learner, cycles = run((now, now + FIVE_HOURS) for now in polls)
    assert learner.learned is None
    assert learner.step is None
    assert cycles == [True] + [False] * 399


def test_missed_resets_are_not_taken_for_a_longer_period() -> None:
    """Polls that come back only after two resets (rate-limited for hours) see a step of
    two periods, late in the new cycle: not counted, however often it happens."""
    readings = [(T0 + k * 2.7 * HOUR, T0 + HOUR + int(k * 2.7) * HOUR) for k in range(12)]
    learner, _ = run(readings)
    assert learner.learned is None


def test_an_idle_window_starts_the_count_again() -> None:
    """A window that goes unused (resets_at null) starts again at its next use, so the
    step across the idle time is not a period."""
    readings = [
        (T0, T0 + HOUR),
        (T0 + HOUR + 5, T0 + 2 * HOUR),  # one step: 1 h
        (T0 + 2 * HOUR + 5, None),  # idle
        (T0 + 2.4 * HOUR, T0 + 3.4 * HOUR),  # used again 24 minutes later
        (T0 + 3.4 * HOUR + 5, T0 + 4.4 * HOUR),  # a step of 1 h: the first since idle
    ]
    learner, cycles = run(readings)
    assert cycles == [True, True, True, True, True]
    assert learner.learned is None
    assert learner.step == HOUR
    learner, _ = observe(learner, T0 + 5.4 * HOUR, T0 + 4.4 * HOUR + 5)
    assert learner.learned == HOUR


def test_a_reset_time_moved_back_starts_the_count_again() -> None:
    learner = LengthLearner(resets_at=T0 + HOUR, step=HOUR, learned=None)
    learner, new_cycle = observe(learner, T0 + 0.5 * HOUR, T0)
    assert new_cycle
    assert learner == LengthLearner(resets_at=T0 + 0.5 * HOUR)


def test_a_reset_seen_by_a_clock_a_little_behind_the_upstreams_counts() -> None:
    """The upstream rolled over; monitor's clock still reads a moment before the reset."""
    learner = LengthLearner(resets_at=T0 + HOUR, step=HOUR)
    learner, new_cycle = observe(learner, T0 + 2 * HOUR, T0 + HOUR - 30)
    assert new_cycle
    assert learner == LengthLearner(resets_at=T0 + 2 * HOUR, step=HOUR, learned=HOUR)


def test_a_revised_reset_time_keeps_the_count() -> None:
    learner = LengthLearner(resets_at=T0 + HOUR, step=HOUR)
    learner, new_cycle = observe(learner, T0 + 1.5 * HOUR, T0 + 0.5 * HOUR)
    assert not new_cycle
    assert learner == LengthLearner(resets_at=T0 + 1.5 * HOUR, step=HOUR)


@pytest.mark.parametrize(
    ("step", "other", "same"),
    [
        (10 * HOUR, 10 * HOUR + 360, True),  # 1 %
        (10 * HOUR, 10 * HOUR + 370, False),
        (HOUR, HOUR + 60, True),  # 1 % is 36 s: 60 s is the least asked for
        (300, 359, True),  # never closer than 60 s
        (300, 361, False),
        (SEVEN_DAYS, SEVEN_DAYS - 6000, True),
        (SEVEN_DAYS, SEVEN_DAYS + 7000, False),
    ],
)
def test_agreement_tolerance(step: float, other: float, same: bool) -> None:
    assert agree(step, other) is same
    assert agree(other, step) is same


@settings(max_examples=300, deadline=None)
@given(
    period=st.floats(min_value=600, max_value=14 * 86400),
    offset=st.floats(min_value=0, max_value=1),
    gaps=st.lists(st.floats(min_value=0.001, max_value=3.0), min_size=2, max_size=60),
)
def test_only_the_true_period_is_ever_learned(
    period: float, offset: float, gaps: list[float]
) -> None:
    """Whatever the poll times (gaps in periods, some far longer than one), a strictly
    periodic window is learned as its period or not at all, never as a multiple."""
    first_reset = T0 + offset * period
    now, readings = T0, []
    for gap in gaps:
        passed = max(0, int((now - first_reset) // period) + 1)
        readings.append((now, first_reset + passed * period))
        now += gap * period
    learner, _ = run(readings)
    assert learner.learned is None or abs(learner.learned - period) <= 1
