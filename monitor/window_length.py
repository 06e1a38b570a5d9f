"""How long a usage window is: documented for the well-known ones, learned for the rest.

`five_hour` lasts 5 hours; `seven_day` and every `seven_day_*` last 7 days. Any other
window's length is learned from its `resets_at` as polls see it, and is unknown until
then (no guess is ever made):

- When `resets_at` moves forward after a reset (the poll that sees the new time comes
  at or after the old one, give or take a minute of difference between monitor's clock
  and the upstream's), the step between the two times is one period of the window,
  provided the new time was seen in the first half of the new period: later than that,
  a second reset could hide between the two readings and the step be two periods.
- A length is kept once two such steps in a row agree: within 1 % of the step, and never
  closer than 60 s is asked for. It is their mean, to the second.
- A move of `resets_at` of 60 s or less is the same reset, jittered. A move forward
  before the old time came is the upstream revising its reset time, not a reset. A move
  backward, or a `resets_at` of null (a window nobody uses has no reset time; it starts
  again from its first use, so the next step is not a period), starts the count again.
- A learned length stays until two steps in a row agree on another one: one irregular
  reset does not undo it.

`observe` is a pure function: it takes what was known and one reading, and returns what
is known after it, and whether that reading starts a new cycle of the window.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3600.0
DAY = 24 * HOUR
FIVE_HOURS = 5 * HOUR
SEVEN_DAYS = 7 * DAY
# resets_at moving by this much or less is the same reset time, jittered.
SAME_RESET_SECONDS = 60.0
# How far monitor's clock may be behind the upstream's when it sees a reset.
CLOCK_SKEW_SECONDS = 60.0
# Two steps agree within this fraction of the longer one, or within AGREE_SECONDS.
AGREE_FRACTION = 0.01
AGREE_SECONDS = 60.0


def documented_length(window: str) -> float | None:
    """The documented length of a window in seconds, or None for a window of unknown length."""
    if window == "five_hour":
        return FIVE_HOURS
    if window == "seven_day" or window.startswith("seven_day_"):
        return SEVEN_DAYS
    return None


def agree(step: float, other: float) -> bool:
    """Whether two measured steps are the same period."""
    return abs(step - other) <= max(AGREE_SECONDS, AGREE_FRACTION * max(step, other))


@dataclass(frozen=True, slots=True)
class LengthLearner:
    """What is known of one window's period from the reset times seen so far."""

    resets_at: float | None = None  # the reset time of the cycle under way, as last seen
    step: float | None = None  # the last step measured across exactly one reset
    learned: float | None = None  # agreed by two steps in a row, in seconds


def observe(
    learner: LengthLearner, resets_at: float | None, now: float
) -> tuple[LengthLearner, bool]:
    """`learner` after a poll at `now` saw `resets_at`; and whether a new cycle began (the
    window reset or restarted), so what was kept of the old cycle no longer applies."""
    last = learner.resets_at
    if resets_at == last:  # the common case: a poll within the cycle, nothing to learn
        return learner, False
    if resets_at is None:
        return LengthLearner(learned=learner.learned), True
    if last is None:
        return LengthLearner(resets_at, None, learner.learned), True
    moved = resets_at - last
    if abs(moved) <= SAME_RESET_SECONDS:
        return LengthLearner(resets_at, learner.step, learner.learned), False
    if moved < 0:
        return LengthLearner(resets_at, None, learner.learned), True
    if now < last - CLOCK_SKEW_SECONDS:
        # Moved forward well before it was due: the upstream revised its reset time.
        return LengthLearner(resets_at, learner.step, learner.learned), False
    if now - last >= moved / 2:
        # Seen too late into the new cycle to rule out a second reset in between.
        return LengthLearner(resets_at, None, learner.learned), True
    learned = learner.learned
    if learner.step is not None and agree(learner.step, moved):
        learned = float(round((learner.step + moved) / 2))
    return LengthLearner(resets_at, moved, learned), True


def window_length(window: str, learner: LengthLearner | None) -> float | None:
    """The window's length: documented, else learned, else None (unknown)."""
    documented = documented_length(window)
    if documented is not None:
        return documented
    return None if learner is None else learner.learned
