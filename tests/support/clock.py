"""A clock the test moves by hand."""

from __future__ import annotations

import time


class FakeClock:
    """Unix seconds that only move when the test says so; callable like `time.time`."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
