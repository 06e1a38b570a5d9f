"""The recent utilization of one usage window: a short, bounded series kept in memory.

At most `POINTS` readings over the last `SPAN_SECONDS` (or over the window's length, when
it is shorter), spaced at least span / (POINTS - 1) apart except the last one, which is
always the latest reading. Polls come every minute or so: a new reading closer than the
spacing to the one before the last only moves the last point. The series is cleared
when the window resets, so it never mixes two cycles.

Times are kept as doubles and values as single-precision floats in `array`s (a few
hundred bytes a window), since a daemon keeps one per window of up to 10,000 orgs.
"""

from __future__ import annotations

from array import array

POINTS = 48
SPAN_SECONDS = 4 * 3600.0


class History:
    """(time, utilization ratio) readings of one window, oldest first."""

    __slots__ = ("times", "values")

    def __init__(self) -> None:
        self.times = array("d")
        self.values = array("f")

    def __len__(self) -> int:
        return len(self.times)

    def points(self) -> list[tuple[float, float]]:
        return list(zip(self.times, self.values, strict=True))

    def clear(self) -> None:
        del self.times[:]
        del self.values[:]

    def add(self, at: float, value: float, span: float = SPAN_SECONDS) -> None:
        """Keep the reading `value` taken at `at`, and only what falls within `span` before it."""
        span = min(span, SPAN_SECONDS)
        times, values = self.times, self.values
        if times and at <= times[-1]:
            # Two answers in the same instant: the later one stands. An older one (the
            # clock stepped back) says nothing newer than what is kept.
            if at == times[-1]:
                values[-1] = value
            return
        spacing = span / (POINTS - 1)
        if len(times) >= 2 and times[-1] - times[-2] < spacing:
            times[-1], values[-1] = at, value
        else:
            times.append(at)
            values.append(value)
        start = 0
        while start < len(times) and times[start] < at - span:
            start += 1
        start = max(start, len(times) - POINTS)
        if start:
            del times[:start]
            del values[:start]
