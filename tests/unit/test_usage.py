"""parse_usage: every stored payload with exact values, edge cases, and arbitrary JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.usage import (
    EMPTY_SNAPSHOT,
    ExtraUsage,
    UsageSnapshot,
    UsageWindow,
    parse_number,
    parse_timestamp,
    parse_usage,
)
from tests.support.paths import FIXTURES


def ts(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    *,
    micro: int = 0,
) -> float:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC).timestamp()


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def windows_of(snapshot: UsageSnapshot) -> dict[str, tuple[float | None, float | None]]:
    return {w.name: (w.utilization, w.resets_at) for w in snapshot.windows}


def assert_windows(snapshot: UsageSnapshot, expected: dict[str, tuple[Any, Any]]) -> None:
    got = windows_of(snapshot)
    assert list(got) == list(expected)
    for name, (utilization, resets_at) in expected.items():
        got_utilization, got_resets = got[name]
        if utilization is None:
            assert got_utilization is None, name
        else:
            assert got_utilization == pytest.approx(utilization, abs=1e-12), name
        assert got_resets == resets_at, name


# -- the stored payloads -----------------------------------------------------------------


def test_seed_shape() -> None:
    snapshot = parse_usage(load("usage_seed_shape.json"))
    assert_windows(
        snapshot,
        {
            "claude_code": (0.425, ts(2026, 11, 28, 23)),
            "projects": (None, None),  # null is no value, never 0
            "extra_usage": (0.2468, None),
        },
    )
    assert snapshot.extra == ExtraUsage(is_enabled=True, monthly_limit=5000.0, used_credits=1234.0)


def test_limits_2026_shape() -> None:
    snapshot = parse_usage(load("usage_2026_limits.json"))
    assert_windows(
        snapshot,
        {
            "five_hour": (0.9711, ts(2026, 11, 28, 21, 30)),
            "seven_day": (0.642, ts(2026, 12, 1)),
            "seven_day_cowork": (0.035, ts(2026, 12, 1)),
            "extra_usage": (0.8321, None),
        },
    )
    # codename keys that are null, `spend` and `limits[]` are not windows and break nothing
    assert snapshot.window("iguana_necktie") is None
    assert snapshot.window("spend") is None
    assert snapshot.window("limits") is None
    assert snapshot.extra == ExtraUsage(
        is_enabled=True,
        monthly_limit=10000.0,
        used_credits=8321.0,
        currency="USD",
        decimal_places=2,
    )


def test_oauth_2025_shape() -> None:
    snapshot = parse_usage(load("usage_oauth_2025.json"))
    assert_windows(
        snapshot,
        {
            "five_hour": (0.37, ts(2026, 11, 28, 22, 59, 59, micro=771647)),
            "seven_day": (0.12, ts(2026, 12, 2, 9, micro=123456)),
            "seven_day_opus": (0.0, None),  # a real 0 stays 0
            "extra_usage": (None, None),
        },
    )
    assert snapshot.extra == ExtraUsage(is_enabled=False, monthly_limit=None, used_credits=None)
    assert snapshot.reset_times() == [
        ts(2026, 11, 28, 22, 59, 59, micro=771647),
        ts(2026, 12, 2, 9, micro=123456),
    ]


def test_managed_seat_has_no_windows_and_no_extra() -> None:
    snapshot = parse_usage(load("usage_managed_seat.json"))
    assert snapshot.windows == ()
    assert snapshot.extra is None


@pytest.mark.parametrize(
    "name",
    [
        "account_bootstrap.json",
        "error_rate_limited.json",
        "error_unauthorized.json",
        "memory_empty.json",
        "web_fetch_not_allowed.json",
        "web_fetch_ok.json",
    ],
)
def test_payloads_that_are_not_usage_give_no_windows(name: str) -> None:
    assert parse_usage(load(name)) == EMPTY_SNAPSHOT


def test_every_stored_json_payload_parses() -> None:
    names = sorted(p.name for p in Path(FIXTURES).glob("*.json"))
    assert len(names) >= 10
    for name in names:
        assert isinstance(parse_usage(load(name)), UsageSnapshot)


# -- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T23:00:00Z", ts(2026, 11, 28, 23)),
        ("2026-11-28T23:00:00z", ts(2026, 11, 28, 23)),
        ("2026-11-28T23:00:00+00:00", ts(2026, 11, 28, 23)),
        ("2026-11-29T01:00:00+02:00", ts(2026, 11, 28, 23)),
        ("2026-11-28T18:30:00-04:30", ts(2026, 11, 28, 23)),
        ("2026-11-28T23:00:00.000001+00:00", ts(2026, 11, 28, 23, micro=1)),
        ("2026-11-28T23:00:00.771647Z", ts(2026, 11, 28, 23, micro=771647)),
        ("2026-11-28T23:00:00.5+00:00", ts(2026, 11, 28, 23, micro=500000)),
    ],
)
def test_timestamps_with_any_offset(text: str, expected: float) -> None:
    assert parse_timestamp(text) == expected


def test_an_offset_is_applied_not_ignored() -> None:
    plus_two = datetime(2026, 11, 28, 23, tzinfo=timezone(timedelta(hours=2)))
    assert parse_timestamp("2026-11-28T23:00:00+02:00") == plus_two.timestamp()
    assert parse_timestamp("2026-11-28T23:00:00+02:00") == ts(2026, 11, 28, 21)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "soon",
        "2026-11-28T23:00:00",  # no offset: refused rather than guessed
        "2026-11-28",
        "2026-13-01T00:00:00Z",
        "2026-11-28T25:00:00Z",
        "28/11/2026 23:00 +00:00",
        1_795_000_000,
        1_795_000_000.5,
        True,
        ["2026-11-28T23:00:00Z"],
        {"at": "2026-11-28T23:00:00Z"},
        "2026-11-28T23:00:00Z" + " " * 100,
    ],
)
def test_malformed_timestamps_are_no_value(value: Any) -> None:
    assert parse_timestamp(value) is None


def test_a_malformed_resets_at_drops_only_that_value() -> None:
    snapshot = parse_usage(
        {
            "five_hour": {"utilization": 10, "resets_at": "tomorrow"},
            "seven_day": {"utilization": 20, "resets_at": "2026-12-01T00:00:00Z"},
        }
    )
    assert windows_of(snapshot) == {
        "five_hour": (0.10, None),
        "seven_day": (0.20, ts(2026, 12, 1)),
    }


# -- numbers, nulls and strange keys -----------------------------------------------------


def test_null_anywhere_is_no_value_never_zero() -> None:
    snapshot = parse_usage(
        {
            "five_hour": {"utilization": None, "resets_at": None},
            "seven_day": None,
            "extra_usage": {"is_enabled": None, "monthly_limit": None, "used_credits": None},
        }
    )
    assert snapshot.windows == (UsageWindow("five_hour", None, None),)
    assert snapshot.extra == ExtraUsage(None, None, None)


def test_only_one_field_is_enough_for_a_window() -> None:
    snapshot = parse_usage(
        {"a": {"utilization": 5}, "b": {"resets_at": "2026-12-01T00:00:00Z"}, "c": {"x": 1}}
    )
    assert windows_of(snapshot) == {"a": (0.05, None), "b": (None, ts(2026, 12, 1))}


def test_utilization_over_100_is_kept() -> None:
    snapshot = parse_usage({"five_hour": {"utilization": 123.4, "resets_at": None}})
    window = snapshot.window("five_hour")
    assert window is not None
    assert (window.name, window.resets_at) == ("five_hour", None)
    assert window.utilization == pytest.approx(1.234)


@pytest.mark.parametrize(
    "value", [True, False, "42", "42.0", [42], {"v": 42}, float("nan"), float("inf")]
)
def test_utilization_that_is_not_a_finite_number_is_no_value(value: Any) -> None:
    snapshot = parse_usage({"five_hour": {"utilization": value, "resets_at": None}})
    assert snapshot.window("five_hour") == UsageWindow("five_hour", None, None)


def test_booleans_are_not_numbers_for_credits_either() -> None:
    extra = parse_usage(
        {"extra_usage": {"is_enabled": 1, "monthly_limit": True, "used_credits": False}}
    ).extra
    assert extra == ExtraUsage(is_enabled=None, monthly_limit=None, used_credits=None)
    assert parse_number(True) is None
    assert parse_number(0) == 0.0


def test_monthly_credit_limit_is_the_same_limit() -> None:
    extra = parse_usage(
        {"extra_usage": {"is_enabled": True, "monthly_credit_limit": 2500, "used_credits": 10}}
    ).extra
    assert extra is not None
    assert extra.monthly_limit == 2500.0
    # monthly_limit wins when both are there
    both = parse_usage({"extra_usage": {"monthly_limit": 1, "monthly_credit_limit": 2}}).extra
    assert both is not None
    assert both.monthly_limit == 1.0


def test_currency_and_decimal_places_are_checked() -> None:
    extra = parse_usage(
        {"extra_usage": {"currency": "a very long currency", "decimal_places": True}}
    ).extra
    assert extra == ExtraUsage(None, None, None, currency=None, decimal_places=None)
    extra = parse_usage({"extra_usage": {"currency": "EUR", "decimal_places": 3}}).extra
    assert extra == ExtraUsage(None, None, None, currency="EUR", decimal_places=3)


def test_unknown_keys_limits_and_spend_never_break_it() -> None:
    snapshot = parse_usage(
        {
            "limits": [{"percent": 50, "utilization": 50}, None, "x"],
            "spend": {"used": {"amount_minor": 1}, "percent": 1},
            "five_hour": {"utilization": 1, "resets_at": None, "new_field": {"deep": [1]}},
            "tangelo": None,
            "some_flag": True,
            "a_list": [],
            "a_number": 5,
            "bad name with spaces": {"utilization": 1},
            "x" * 65: {"utilization": 1},
            "extra_usage": "not an object",
        }
    )
    assert windows_of(snapshot) == {"five_hour": (0.01, None)}
    assert snapshot.extra is None


@pytest.mark.parametrize("payload", [None, [], [{"utilization": 1}], "usage", 42, True])
def test_a_payload_that_is_not_an_object_is_empty(payload: Any) -> None:
    assert parse_usage(payload) == EMPTY_SNAPSHOT


def test_a_huge_integer_is_no_value_not_a_crash() -> None:
    # json.loads turns a 400-digit number into a Python int that float() cannot hold.
    payload = json.loads('{"five_hour": {"utilization": 1' + "0" * 400 + "}}")
    snapshot = parse_usage(payload)
    assert snapshot.window("five_hour") == UsageWindow("five_hour", None, None)
    extra = parse_usage({"extra_usage": {"used_credits": 10**400}}).extra
    assert extra is not None
    assert extra.used_credits is None


# -- arbitrary JSON ----------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "utilization",
        "resets_at",
        "extra_usage",
        "is_enabled",
        "monthly_limit",
        "monthly_credit_limit",
        "used_credits",
        "currency",
        "decimal_places",
        "five_hour",
        "limits",
        "spend",
    ]
) | st.text(max_size=70)
TIMES = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | st.sampled_from(
    ["2026-11-28T23:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
    | TIMES
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)


# Generated cases look for crashes, not for lines: run untraced (coverage slows them 2x).
@pytest.mark.untraced
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_arbitrary_json_never_raises(payload: Any) -> None:
    snapshot = parse_usage(payload)
    for window in snapshot.windows:
        assert 1 <= len(window.name) <= 64
        for value in (window.utilization, window.resets_at):
            assert value is None or (isinstance(value, float) and math.isfinite(value))
    extra = snapshot.extra
    if extra is not None:
        for number in (extra.monthly_limit, extra.used_credits):
            assert number is None or math.isfinite(number)


@pytest.mark.untraced  # generated too
@settings(max_examples=100, deadline=None)
@given(st.dictionaries(KEYS, st.dictionaries(KEYS, SCALARS, max_size=4), max_size=6))
def test_arbitrary_window_objects_never_raise(payload: dict[str, Any]) -> None:
    parse_usage(payload)
    # and survive a JSON round trip the way the upstream would send them
    text = json.dumps(payload)
    parse_usage(json.loads(text))
