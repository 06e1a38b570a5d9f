"""Usage windows and extra-usage credits as pure functions of time.

Nothing here ticks: a window stores where its cycles start and, at most, one override
("read X% at time T"), and every reading is computed from the clock value the caller
passes in. That keeps the model deterministic and lets tests jump hours ahead for free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class WindowSpec:
    """How one window behaves.

    `period` is the cycle length in seconds, `rate` how many percentage points it climbs
    per second. `start_offset` places the first cycle relative to the moment the org is
    added: negative means a cycle already under way, `None` means never used (the window
    reads utilization 0 and `resets_at` null until `set_utilization` touches it). `cap`
    bounds the climb, as the real upstream stops counting at the limit; `None` lets it
    run past 100.
    """

    period: float
    rate: float
    start_offset: float | None = 0.0
    cap: float | None = 100.0

    def __post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"window period must be positive, got {self.period}")
        if self.rate < 0:
            raise ValueError(f"window rate must not be negative, got {self.rate}")
        if self.cap is not None and self.cap < 0:
            raise ValueError(f"window cap must not be negative, got {self.cap}")

    @classmethod
    def filling(
        cls,
        period: float,
        percent_at_reset: float,
        *,
        phase: float = 0.0,
        cap: float | None = 100.0,
    ) -> WindowSpec:
        """A window that reaches `percent_at_reset` just before it resets.

        `phase` (0..1) is how far into its first cycle the window already is when the org
        is added, so a demo does not start every window at zero.
        """
        return cls(
            period=period,
            rate=percent_at_reset / period,
            start_offset=-phase * period,
            cap=cap,
        )

    @classmethod
    def unused(cls, period: float, rate: float = 0.0) -> WindowSpec:
        return cls(period=period, rate=rate, start_offset=None)

    def scaled(self, time_scale: float) -> WindowSpec:
        """The same window with time running `time_scale` times faster."""
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        return replace(
            self,
            period=self.period / time_scale,
            rate=self.rate * time_scale,
            start_offset=None if self.start_offset is None else self.start_offset / time_scale,
        )


@dataclass(frozen=True)
class WindowState:
    """A window's spec anchored on the clock.

    `start` is the absolute start of the first cycle (None while unused); `override` is
    a `(time, percent)` pair set by a test hook, valid only inside the cycle it was set in.
    """

    spec: WindowSpec
    start: float | None
    override: tuple[float, float] | None = None


@dataclass(frozen=True)
class WindowReading:
    utilization: float
    resets_at: float | None


def start_window(spec: WindowSpec, now: float) -> WindowState:
    start = None if spec.start_offset is None else now + spec.start_offset
    return WindowState(spec=spec, start=start)


def cycle_bounds(start: float, period: float, now: float) -> tuple[float, float]:
    """Start and end of the cycle that contains `now` (cycles never drift)."""
    if now < start:
        return start, start + period
    index = math.floor((now - start) / period)
    cycle_start = start + index * period
    return cycle_start, cycle_start + period


def read_window(state: WindowState, now: float) -> WindowReading:
    if state.start is None or now < state.start:
        return WindowReading(utilization=0.0, resets_at=None)
    spec = state.spec
    cycle_start, cycle_end = cycle_bounds(state.start, spec.period, now)
    base, since = 0.0, cycle_start
    if state.override is not None:
        set_at, value = state.override
        if cycle_start <= set_at <= now:
            base, since = value, set_at
    value = base + spec.rate * (now - since)
    if spec.cap is not None:
        # An override above the cap stays as set: the hook is how tests reach >100%.
        value = base if base > spec.cap else min(value, spec.cap)
    return WindowReading(utilization=round(value, 2), resets_at=cycle_end)


def override_window(state: WindowState, percent: float, now: float) -> WindowState:
    """Make the window read `percent` at `now` and keep climbing from there."""
    if percent < 0 or not math.isfinite(percent):
        raise ValueError(f"utilization must be a finite number >= 0, got {percent}")
    start = state.start
    if start is None or start > now:
        # Touching an unused window puts it in use, with a fresh cycle from now.
        start = now
    return WindowState(spec=state.spec, start=start, override=(now, percent))


@dataclass(frozen=True)
class ExtraSpec:
    """Pay-as-you-go credits on top of the plan, in cents.

    `used_credits` is the reading at `anchor`; it then climbs `rate` cents per second
    while enabled, and stops at `monthly_limit` because upstream refuses to spend more.
    """

    is_enabled: bool
    monthly_limit: int | None
    used_credits: int
    rate: float = 0.0
    anchor: float = 0.0

    def __post_init__(self) -> None:
        if self.monthly_limit is not None and self.monthly_limit < 0:
            raise ValueError(f"monthly_limit must not be negative, got {self.monthly_limit}")
        if self.used_credits < 0:
            raise ValueError(f"used_credits must not be negative, got {self.used_credits}")
        if self.rate < 0:
            raise ValueError(f"extra usage rate must not be negative, got {self.rate}")


@dataclass(frozen=True)
class ExtraReading:
    is_enabled: bool
    monthly_limit: int | None
    used_credits: int | None
    utilization: float | None


def read_extra(extra: ExtraSpec, now: float) -> ExtraReading:
    if extra.monthly_limit is None:
        return ExtraReading(extra.is_enabled, None, None, None)
    used = float(extra.used_credits)
    if extra.is_enabled and now > extra.anchor:
        used += extra.rate * (now - extra.anchor)
        used = min(used, float(max(extra.monthly_limit, extra.used_credits)))
    used_int = math.floor(used)
    utilization = (
        round(used_int / extra.monthly_limit * 100, 2) if extra.monthly_limit > 0 else None
    )
    return ExtraReading(extra.is_enabled, extra.monthly_limit, used_int, utilization)


def update_extra(
    extra: ExtraSpec,
    now: float,
    *,
    used_credits: int | None = None,
    monthly_limit: int | None = None,
    is_enabled: bool | None = None,
    rate: float | None = None,
) -> ExtraSpec:
    """Re-anchor at `now` so the credits already spent are kept, then apply the changes."""
    current = read_extra(extra, now)
    used = used_credits if used_credits is not None else (current.used_credits or 0)
    return ExtraSpec(
        is_enabled=extra.is_enabled if is_enabled is None else is_enabled,
        monthly_limit=extra.monthly_limit if monthly_limit is None else monthly_limit,
        used_credits=used,
        rate=extra.rate if rate is None else rate,
        anchor=now,
    )
