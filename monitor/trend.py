"""One org's usage windows followed from snapshot to snapshot: each window's length
(`window_length`) and its recent utilization (`history`).

The store feeds every snapshot it records, polled or relayed by the proxy, with the time
it arrived. A window missing from a snapshot keeps what was learned of its length (the
upstream sometimes leaves a window out for a while) but not its readings; at most
`MAX_ABSENT` such windows are remembered per org, the longest gone forgotten first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from monitor.history import SPAN_SECONDS, History
from monitor.usage import UsageSnapshot
from monitor.window_length import LengthLearner, documented_length, observe, window_length

MAX_ABSENT = 16


@dataclass(slots=True)
class WindowTrend:
    """What is followed of one window across snapshots. `length` is the window's
    length (documented, else learned, else None), kept current by `learn`: `/metrics`
    reads it for every window of every org at each render."""

    name: str
    learner: LengthLearner = field(default_factory=LengthLearner)
    history: History = field(default_factory=History)
    length: float | None = field(init=False)

    def __post_init__(self) -> None:
        self.length = window_length(self.name, self.learner)

    def learn(self, resets_at: float | None, at: float) -> bool:
        """Take in the window's reset time as seen at `at`; whether a new cycle began."""
        learner, new_cycle = observe(self.learner, resets_at, at)
        if learner.learned != self.learner.learned:
            self.length = window_length(self.name, learner)
        self.learner = learner
        return new_cycle


class Trends:
    """The `WindowTrend` of each window of one org, in the order they were last seen."""

    __slots__ = ("_windows",)

    def __init__(self) -> None:
        self._windows: dict[str, WindowTrend] = {}

    def __iter__(self) -> Iterator[WindowTrend]:
        return iter(self._windows.values())

    def get(self, window: str) -> WindowTrend | None:
        return self._windows.get(window)

    def length(self, window: str) -> float | None:
        """The window's length: documented, else learned, else None."""
        trend = self._windows.get(window)
        return documented_length(window) if trend is None else trend.length

    def follow(self, snapshot: UsageSnapshot, at: float) -> None:
        """Take in `snapshot`, received at `at` (Unix seconds)."""
        present = set()
        for window in snapshot.windows:
            present.add(window.name)
            trend = self._windows.pop(window.name, None) or WindowTrend(window.name)
            self._windows[window.name] = trend  # to the end: the most recently seen
            if trend.learn(window.resets_at, at):
                trend.history.clear()
            if window.utilization is not None:
                span = trend.length or SPAN_SECONDS
                trend.history.add(at, window.utilization, span)
        absent = [name for name in self._windows if name not in present]
        for name in absent:
            self._windows[name].history.clear()
        for name in absent[: max(0, len(absent) - MAX_ABSENT)]:
            del self._windows[name]
