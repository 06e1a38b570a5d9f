"""The usage payload families the upstream has been seen to answer, rendered from windows.

Each shape lists its keys in the order the samples show them; a key the org has no
window for renders as `null`, which is how the upstream reports features a plan lacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TypeAlias, get_args

from monitor.simulator.windows import (
    DAY,
    HOUR,
    ExtraReading,
    ExtraSpec,
    WindowReading,
    WindowSpec,
    WindowState,
    read_extra,
    read_window,
)

Shape = Literal["seed", "oauth_2025", "limits_2026", "managed_seat"]
SHAPES: tuple[Shape, ...] = get_args(Shape)

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
JSONObject: TypeAlias = dict[str, JSONValue]

# Window keys per shape, in the samples' order; extra_usage and the 2026 extras follow.
SHAPE_WINDOWS: Mapping[Shape, tuple[str, ...]] = {
    "seed": ("claude_code", "projects"),
    "oauth_2025": (
        "five_hour",
        "seven_day",
        "seven_day_oauth_apps",
        "seven_day_opus",
        "seven_day_sonnet",
    ),
    "limits_2026": ("five_hour", "seven_day", "seven_day_cowork", "iguana_necktie", "tangelo"),
    "managed_seat": ("five_hour", "seven_day"),
}

# Keys of the 2026 `limits[]` entries; windows not listed use their own key as kind.
LIMIT_KINDS: Mapping[str, str] = {
    "five_hour": "session",
    "seven_day": "weekly_all",
    "seven_day_cowork": "weekly_cowork",
    "seven_day_opus": "weekly_opus",
    "seven_day_sonnet": "weekly_sonnet",
}

# The 2026 sample writes the session reset with `Z` and the weekly ones with `+00:00`.
ZULU_WINDOWS: Mapping[Shape, frozenset[str]] = {
    "seed": frozenset(),
    "oauth_2025": frozenset(),
    "limits_2026": frozenset({"five_hour"}),
    "managed_seat": frozenset(),
}

HIGH_SEVERITY_PERCENT = 90.0


def default_windows(shape: Shape) -> dict[str, WindowSpec]:
    """Windows an org of this shape has unless the caller says otherwise (real time)."""
    if shape == "seed":
        return {
            "claude_code": WindowSpec.filling(5 * HOUR, 85.0),
            "projects": WindowSpec.unused(7 * DAY, rate=60.0 / (7 * DAY)),
        }
    if shape == "oauth_2025":
        return {
            "five_hour": WindowSpec.filling(5 * HOUR, 90.0),
            "seven_day": WindowSpec.filling(7 * DAY, 70.0),
            "seven_day_opus": WindowSpec.unused(7 * DAY, rate=30.0 / (7 * DAY)),
        }
    if shape == "limits_2026":
        return {
            "five_hour": WindowSpec.filling(5 * HOUR, 95.0),
            "seven_day": WindowSpec.filling(7 * DAY, 75.0),
            "seven_day_cowork": WindowSpec.filling(7 * DAY, 20.0),
        }
    return {}


def default_extra(shape: Shape) -> ExtraSpec | None:
    if shape == "seed":
        return ExtraSpec(is_enabled=True, monthly_limit=5000, used_credits=0, rate=0.01)
    if shape == "oauth_2025":
        return ExtraSpec(is_enabled=False, monthly_limit=None, used_credits=0)
    if shape == "limits_2026":
        return ExtraSpec(is_enabled=True, monthly_limit=10000, used_credits=0, rate=0.02)
    return None


def format_timestamp(ts: float, *, zulu: bool = False) -> str:
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z") if zulu else text


def _window_json(shape: Shape, key: str, reading: WindowReading) -> JSONObject:
    resets_at = (
        None
        if reading.resets_at is None
        else format_timestamp(reading.resets_at, zulu=key in ZULU_WINDOWS[shape])
    )
    if shape == "seed":
        # The seed sample reports a never-used window as all nulls, keys reversed.
        utilization: float | None = reading.utilization
        if resets_at is None and reading.utilization == 0.0:
            utilization = None
        return {"resets_at": resets_at, "utilization": utilization}
    return {"utilization": reading.utilization, "resets_at": resets_at}


def _extra_json(shape: Shape, reading: ExtraReading) -> JSONObject:
    out: JSONObject = {
        "is_enabled": reading.is_enabled,
        "monthly_limit": reading.monthly_limit,
        "used_credits": reading.used_credits,
        "utilization": reading.utilization,
    }
    if shape == "limits_2026":
        out |= {"currency": "USD", "decimal_places": 2, "can_toggle": True}
    return out


def _money(amount: int | None) -> JSONValue:
    if amount is None:
        return None
    return {"amount_minor": amount, "currency": "USD", "exponent": 2}


def _spend_json(reading: ExtraReading) -> JSONObject:
    return {
        "used": _money(reading.used_credits if reading.used_credits is not None else 0),
        "limit": _money(reading.monthly_limit),
        "percent": reading.utilization,
        "enabled": reading.is_enabled,
    }


def _limit_json(key: str, reading: WindowReading) -> JSONObject:
    return {
        "kind": LIMIT_KINDS.get(key, key),
        "group": "default",
        "percent": reading.utilization,
        "severity": "high" if reading.utilization >= HIGH_SEVERITY_PERCENT else "normal",
        "resets_at": (
            None
            if reading.resets_at is None
            else format_timestamp(reading.resets_at, zulu=key in ZULU_WINDOWS["limits_2026"])
        ),
        "scope": None,
        "is_active": reading.resets_at is not None,
    }


def window_keys(shape: Shape, windows: Mapping[str, WindowState]) -> list[str]:
    """The shape's keys, then any window the caller added beyond them (upstream drift)."""
    keys = list(SHAPE_WINDOWS[shape])
    keys.extend(key for key in windows if key not in keys)
    return keys


def render_usage(
    shape: Shape,
    windows: Mapping[str, WindowState],
    extra: ExtraSpec | None,
    now: float,
) -> JSONObject:
    readings = {key: read_window(state, now) for key, state in windows.items()}
    payload: JSONObject = {}
    for key in window_keys(shape, windows):
        reading = readings.get(key)
        payload[key] = None if reading is None else _window_json(shape, key, reading)
    extra_reading = None if extra is None else read_extra(extra, now)
    payload["extra_usage"] = None if extra_reading is None else _extra_json(shape, extra_reading)
    if shape == "limits_2026":
        payload["spend"] = None if extra_reading is None else _spend_json(extra_reading)
        payload["limits"] = [_limit_json(key, reading) for key, reading in readings.items()]
    return payload
