"""Turn any usage payload into an immutable snapshot.

The upstream's shape drifts (documented `claude_code`/`projects`, observed `five_hour`,
`seven_day_*`, codename keys, `limits[]`, `spend`), so parsing is loose: every top-level
object with `utilization` and/or `resets_at` is a window, `null` is "no value" (never 0),
and a malformed field drops only that field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

EXTRA_USAGE = "extra_usage"
WINDOW_FIELDS = ("utilization", "resets_at")
# `[poll] max_windows_per_org`'s default: each window is a `window` label value.
MAX_WINDOWS = 64
# Which windows are kept first when a payload has more than the bound: the documented
# ones, then the well-known ones, then the rest in the payload's order.
_FIRST_WINDOWS = ("claude_code", "projects", EXTRA_USAGE, "five_hour")
# Window names become label values: keep them to what a sane upstream key looks like, so a
# garbage payload cannot blow up the label set.
_WINDOW_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """One usage window: utilization as a ratio (1.0 = 100 %), reset time in Unix seconds."""

    name: str
    utilization: float | None
    resets_at: float | None


@dataclass(frozen=True, slots=True)
class ExtraUsage:
    """Extra-usage credits, in the upstream's minor units (cents)."""

    is_enabled: bool | None
    monthly_limit: float | None
    used_credits: float | None
    currency: str | None = None
    decimal_places: int | None = None


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    windows: tuple[UsageWindow, ...]
    extra: ExtraUsage | None
    dropped: tuple[str, ...] = ()  # windows beyond the bound, not kept

    def window(self, name: str) -> UsageWindow | None:
        return next((w for w in self.windows if w.name == name), None)

    def utilizations(self) -> dict[str, float | None]:
        return {w.name: w.utilization for w in self.windows}

    def reset_times(self) -> list[float]:
        return [w.resets_at for w in self.windows if w.resets_at is not None]


EMPTY_SNAPSHOT = UsageSnapshot(windows=(), extra=None)


def parse_number(value: Any) -> float | None:
    """A finite JSON number, else None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int of hundreds of digits, which json.loads allows
        return None
    return number if math.isfinite(number) else None


def well_formed(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD. JSON's `\\ud800` escapes let an
    upstream send one, and UTF-8 cannot encode it: it would fail whatever writes the text
    out (the status page, `/metrics`)."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def json_int(text: str) -> int | float:
    """`json.loads`'s `parse_int`. An integer of more digits than Python converts (4300)
    becomes an infinity, which `parse_number` drops as it drops every non-finite number:
    one absurd field then costs that field, not the whole answer."""
    try:
        return int(text)
    except ValueError:
        return -math.inf if text.startswith("-") else math.inf


def parse_timestamp(value: Any) -> float | None:
    """ISO-8601 with `Z`, an offset and/or microseconds -> Unix seconds; anything else -> None.

    A time without an offset is refused rather than guessed: the upstream always sends one.
    """
    if not isinstance(value, str) or not 10 <= len(value) <= 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _is_window(value: Any) -> bool:
    return isinstance(value, dict) and any(key in value for key in WINDOW_FIELDS)


def parse_window(name: str, value: dict[str, Any]) -> UsageWindow:
    percent = parse_number(value.get("utilization"))
    return UsageWindow(
        name=name,
        # Rounded so 42.5 % reads 0.425 rather than 0.42500000000000004.
        utilization=None if percent is None else round(percent / 100.0, 10),
        resets_at=parse_timestamp(value.get("resets_at")),
    )


def parse_extra(value: Any) -> ExtraUsage | None:
    if not isinstance(value, dict):
        return None
    enabled = value.get("is_enabled")
    limit = value.get("monthly_limit")
    if limit is None:
        # claude.ai calls the same limit by another name
        limit = value.get("monthly_credit_limit")
    places = value.get("decimal_places")
    currency = value.get("currency")
    if not isinstance(currency, str) or len(currency) > 8:
        currency = None
    return ExtraUsage(
        is_enabled=enabled if isinstance(enabled, bool) else None,
        monthly_limit=parse_number(limit),
        used_credits=parse_number(value.get("used_credits")),
        currency=None if currency is None else well_formed(currency),
        decimal_places=places
        if isinstance(places, int) and not isinstance(places, bool) and 0 <= places <= 8
        else None,
    )


def window_rank(name: str) -> int:
    """0.. for the windows kept first, then one rank for every other name."""
    if name in _FIRST_WINDOWS:
        return _FIRST_WINDOWS.index(name)
    return len(_FIRST_WINDOWS) + (0 if name.startswith("seven_day") else 1)


def bound_windows(names: list[str], limit: int) -> tuple[set[str], tuple[str, ...]]:
    """Which of `names` (in payload order) to keep under `limit`, and which to drop:
    known windows first (`window_rank`), then the payload's order."""
    if len(names) <= limit:
        return set(names), ()
    order = sorted(range(len(names)), key=lambda i: (window_rank(names[i]), i))
    kept = {names[i] for i in order[:limit]}
    return kept, tuple(name for name in names if name not in kept)


def parse_usage(payload: Any, max_windows: int = MAX_WINDOWS) -> UsageSnapshot:
    """Parse a decoded JSON usage payload. Never raises; a non-object gives an empty snapshot
    (the caller decides whether that shape is an error). At most `max_windows` windows are
    kept (each is a label value); the names of the others are in `dropped`."""
    if not isinstance(payload, dict):
        return EMPTY_SNAPSHOT
    found = [
        (key, value)
        for key, value in payload.items()
        if isinstance(key, str) and _WINDOW_NAME.fullmatch(key) and _is_window(value)
    ]
    kept, dropped = bound_windows([key for key, _ in found], max_windows)
    windows = tuple(parse_window(key, value) for key, value in found if key in kept)
    return UsageSnapshot(windows, parse_extra(payload.get(EXTRA_USAGE)), dropped)
