"""The recent utilization of one usage window: a short, bounded series kept in memory.

At most `POINTS` readings over the last `SPAN_SECONDS` (or over the window's length, when
it is shorter), spaced at least span / (POINTS - 1) apart except the last one, which is
always the latest reading. Polls come every minute or so: a new reading closer than the
spacing to the one before the last only moves the last point. The series is cleared
when the window resets, so it never mixes two cycles.

A daemon keeps one per window of up to 10,000 orgs, so the readings are single-precision
floats in `array`s: values as ratios, times as seconds after the oldest reading kept
(`base`, a double), which a float32 holds to the millisecond over the few hours kept.
About 700 bytes a window when full (docs/benchmarks.md).
"""

from __future__ import annotations

from array import array

POINTS = 48
SPAN_SECONDS = 4 * 3600.0
# Readings closer than this are taken in the same instant (a float32 time is kept to about
# a millisecond).
SAME_INSTANT_SECONDS = 0.01


class History:
    """(time, utilization ratio) readings of one window, oldest first."""

    __slots__ = ("base", "offsets", "values")

    def __init__(self) -> None:
        self.base = 0.0  # Unix seconds of the oldest reading kept
        self.offsets = array("f")  # seconds after `base`
        self.values = array("f")

    def __len__(self) -> int:
        return len(self.values)

    def points(self) -> list[tuple[float, float]]:
        return [(self.base + t, v) for t, v in zip(self.offsets, self.values, strict=True)]

    def clear(self) -> None:
        del self.offsets[:]
        del self.values[:]

    def add(self, at: float, value: float, span: float = SPAN_SECONDS) -> None:
        """Keep the reading `value` taken at `at`, and only what falls within `span` before it."""
        span = min(span, SPAN_SECONDS)
        offsets, values = self.offsets, self.values
        if not values:
            self.base = at
        offset = at - self.base
        if offsets and offset <= offsets[-1] + SAME_INSTANT_SECONDS:
            # Two answers in the same instant: the later one stands. An older one (the
            # clock stepped back) says nothing newer than what is kept.
            if offset >= offsets[-1] - SAME_INSTANT_SECONDS:
                values[-1] = value
            return
        spacing = span / (POINTS - 1)
        if len(offsets) >= 2 and offsets[-1] - offsets[-2] < spacing:
            offsets[-1], values[-1] = offset, value
        else:
            offsets.append(offset)
            values.append(value)
        start = 0
        while start < len(offsets) and offsets[start] < offset - span:
            start += 1
        start = max(start, len(offsets) - POINTS)
        if start:
            self._drop(start)

    def _drop(self, count: int) -> None:
        """Forget the oldest `count` readings; times count from the oldest one left."""
        del self.values[:count]
        shift = self.offsets[count]
        self.base += shift
        self.offsets = array("f", (t - shift for t in self.offsets[count:]))
