"""Where a usage window is heading: pace and projection, as pure arithmetic.

The pace compares the share of the window used with the share of its time that has
passed: elapsed share = 1 - (resets_at - now) / length, pace = utilization / elapsed
share. 1.0 is an even pace; above 1 the window is used faster than it refills. At that
pace to the end, the window reaches `utilization / elapsed share` at its reset (the
projection), and 100 % after `elapsed * (1 - utilization) / utilization` seconds.

Right after a reset the elapsed share is tiny and the pace means little (2 % used in
the first minute of five hours reads as 6x), so there is no pace until min(5 % of the
window, 1 hour) has passed. `prometheus/rules.yml` records the same numbers with the
same rule (`claude_usage:pace_ratio`, `claude_usage:projected_utilization_ratio`); the
status page and `monitor usage` use this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# No pace before min(MIN_ELAPSED_SHARE of the window, MIN_ELAPSED_MAX_SECONDS) has passed.
MIN_ELAPSED_SHARE = 0.05
MIN_ELAPSED_MAX_SECONDS = 3600.0
# A recent rate needs readings at least this far apart.
MIN_RATE_SPAN_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Pace:
    """One window's pace at one moment."""

    ratio: float  # utilization / elapsed share: > 1 is ahead of an even pace
    # The utilization at the reset if this pace holds (1.0 = 100 %): the same number as
    # `ratio`, read as a share of the window rather than as a multiple of an even pace.
    projected: float
    until_reset: float  # seconds
    # Seconds until 100 % at this pace when that comes before the reset (0 once at or
    # over 100 %); None when the window ends below 100 %.
    until_full: float | None

    @property
    def ahead(self) -> bool:
        return self.ratio > 1.0


def min_elapsed(length: float) -> float:
    """Seconds into a window of `length` before its pace is given."""
    return min(MIN_ELAPSED_SHARE * length, MIN_ELAPSED_MAX_SECONDS)


def window_pace(
    utilization: float | None, resets_at: float | None, length: float | None, now: float
) -> Pace | None:
    """The pace of a window at `now`, or None where it is not known: no utilization, no
    reset time, no known length, a reset time already past (the next poll will tell) or
    more than one length away, or too early in the window."""
    if utilization is None or resets_at is None or length is None or length <= 0:
        return None
    # The operations of the recording rules, in their order, so both give the same bits.
    until_reset = resets_at - now
    share = 1 - until_reset / length
    if not min_elapsed(length) / length <= share < 1:
        return None
    ratio = utilization / share
    until_full: float | None = None
    if utilization >= 1.0:
        until_full = 0.0
    elif ratio >= 1.0:
        elapsed = length - until_reset
        until_full = elapsed * (1.0 - utilization) / utilization
    return Pace(ratio=ratio, projected=ratio, until_reset=until_reset, until_full=until_full)


def recent_rate(points: Sequence[tuple[float, float]]) -> float | None:
    """Utilization gained per hour over `points` (time, ratio), first to last; None with
    fewer than two readings or less than 5 minutes between them."""
    if len(points) < 2:
        return None
    (start, first), (end, last) = points[0], points[-1]
    if end - start < MIN_RATE_SPAN_SECONDS:
        return None
    return (last - first) / (end - start) * 3600.0


def format_ratio(ratio: float) -> str:
    """A pace for people: two decimals without a trailing zero (`1.3`, `0.95`, `1.0`),
    so 0.95 is not shown as the even pace it is not."""
    text = f"{ratio:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
