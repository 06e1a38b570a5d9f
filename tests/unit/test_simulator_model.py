"""The simulator's model as plain calls: windows, extra usage, payload shapes against the
recorded samples, credentials, faults and URL rules."""

from __future__ import annotations

import json

import pytest

from monitor.simulator import ExtraSpec, Fault, FaultError, Simulator, WindowSpec
from monitor.simulator.faults import FaultTable
from monitor.simulator.model import SimAccount, authenticate, url_allowed
from monitor.simulator.windows import (
    override_window,
    read_extra,
    read_window,
    start_window,
    update_extra,
)
from tests.support.clock import FakeClock
from tests.support.simulator import (
    ACME,
    GLOBEX,
    INITECH,
    NOBODY,
    SEAT,
    T0,
    fixture,
    parse_ts,
    shape_of,
    usage_of,
)

# Windows and extra usage, as plain calls


def test_window_climbs_from_zero_and_resets_at_resets_at() -> None:
    state = start_window(WindowSpec.filling(100.0, 50.0), now=T0)
    assert read_window(state, T0).utilization == 0.0
    assert read_window(state, T0 + 50).utilization == 25.0
    late = read_window(state, T0 + 99.9)
    assert late.utilization == 49.95
    assert late.resets_at == T0 + 100
    after = read_window(state, T0 + 100)
    assert (after.utilization, after.resets_at) == (0.0, T0 + 200)
    assert read_window(state, T0 + 1030).resets_at == T0 + 1100


def test_window_cap_and_uncapped_overshoot() -> None:
    capped = start_window(WindowSpec.filling(100.0, 150.0), now=T0)
    uncapped = start_window(WindowSpec.filling(100.0, 150.0, cap=None), now=T0)
    assert read_window(capped, T0 + 90).utilization == 100.0
    assert read_window(uncapped, T0 + 90).utilization == 135.0


def test_window_phase_starts_mid_cycle() -> None:
    state = start_window(WindowSpec.filling(100.0, 80.0, phase=0.25), now=T0)
    reading = read_window(state, T0)
    assert (reading.utilization, reading.resets_at) == (20.0, T0 + 75)


def test_override_keeps_climbing_then_resets() -> None:
    state = start_window(WindowSpec.filling(100.0, 10.0), now=T0)
    state = override_window(state, 97.0, now=T0 + 10)
    assert read_window(state, T0 + 10).utilization == 97.0
    assert read_window(state, T0 + 20).utilization == 98.0
    assert read_window(state, T0 + 100).utilization == 0.0
    above = override_window(state, 120.0, now=T0 + 110)
    assert read_window(above, T0 + 111).utilization == 120.0  # set above the cap: kept
    with pytest.raises(ValueError, match="utilization"):
        override_window(state, -1.0, now=T0)


def test_unused_window_has_null_reset_until_touched() -> None:
    state = start_window(WindowSpec.unused(100.0, rate=1.0), now=T0)
    assert read_window(state, T0 + 500) == read_window(state, T0)
    assert read_window(state, T0).resets_at is None
    touched = override_window(state, 5.0, now=T0 + 500)
    reading = read_window(touched, T0 + 510)
    assert (reading.utilization, reading.resets_at) == (15.0, T0 + 600)


def test_window_spec_rejects_nonsense_and_scales() -> None:
    with pytest.raises(ValueError, match="period"):
        WindowSpec(period=0, rate=1)
    fast = WindowSpec.filling(5 * 3600.0, 90.0).scaled(60)
    assert fast.period == 300.0
    assert fast.rate * fast.period == pytest.approx(90.0)


def test_extra_usage_climbs_stops_at_limit_and_reanchors() -> None:
    extra = ExtraSpec(is_enabled=True, monthly_limit=1000, used_credits=100, rate=2.0, anchor=T0)
    assert read_extra(extra, T0 + 50).used_credits == 200
    assert read_extra(extra, T0 + 50).utilization == 20.0
    assert read_extra(extra, T0 + 10_000).used_credits == 1000
    paused = update_extra(extra, T0 + 50, is_enabled=False)
    assert read_extra(paused, T0 + 500).used_credits == 200
    assert read_extra(ExtraSpec(False, None, 0), T0).utilization is None


# Payload shapes against the recorded samples


@pytest.mark.parametrize(
    ("org", "sample"),
    [
        (ACME, "usage_seed_shape.json"),
        (GLOBEX, "usage_oauth_2025.json"),
        (INITECH, "usage_2026_limits.json"),
        (SEAT, "usage_managed_seat.json"),
    ],
)
def test_usage_shapes_match_samples(
    sim: Simulator, sim_clock: FakeClock, org: str, sample: str
) -> None:
    sim_clock.now += 600
    payload = usage_of(sim, org)
    expected = fixture(sample)
    assert list(payload) == list(expected)
    for key, value in expected.items():
        if value is not None and payload[key] is not None:
            assert shape_of(payload[key]) == shape_of(value), key


def test_timestamps_use_the_samples_offset_styles(sim: Simulator) -> None:
    seed = usage_of(sim, ACME)["claude_code"]
    assert seed["resets_at"] == "2027-01-15T13:00:00.000000+00:00"
    limits = usage_of(sim, INITECH)
    assert limits["five_hour"]["resets_at"].endswith("Z")
    assert limits["seven_day"]["resets_at"].endswith("+00:00")
    assert parse_ts(limits["five_hour"]["resets_at"]) == T0 + 5 * 3600


def test_seed_unused_window_is_all_null_and_oauth_unused_is_zero(sim: Simulator) -> None:
    assert usage_of(sim, ACME)["projects"] == {"resets_at": None, "utilization": None}
    assert usage_of(sim, GLOBEX)["seven_day_opus"] == {"utilization": 0.0, "resets_at": None}


def test_limits_and_spend_follow_windows_and_extra(sim: Simulator, sim_clock: FakeClock) -> None:
    sim.set_utilization(INITECH, "five_hour", 95.0)
    sim.set_extra(INITECH, used_credits=8321, monthly_limit=10000)
    sim_clock.now += 1
    payload = usage_of(sim, INITECH)
    session = payload["limits"][0]
    assert session["kind"] == "session"
    assert session["percent"] == payload["five_hour"]["utilization"]
    assert session["resets_at"] == payload["five_hour"]["resets_at"]
    assert session["severity"] == "high"
    assert payload["limits"][1]["severity"] == "normal"
    extra = payload["extra_usage"]
    assert payload["spend"]["used"]["amount_minor"] == extra["used_credits"]
    assert payload["spend"]["percent"] == extra["utilization"]
    assert extra["utilization"] == round(extra["used_credits"] / 10000 * 100, 2)


def test_added_window_beyond_the_shape_is_rendered(sim_clock: FakeClock) -> None:
    sim = Simulator(sim_clock)
    sim.add_org(
        ACME, "acme", shape="oauth_2025", windows={"seven_day_cowork": WindowSpec(100.0, 1.0)}
    )
    payload = usage_of(sim, ACME)
    assert payload["five_hour"] is None
    assert list(payload)[-2:] == ["seven_day_cowork", "extra_usage"]


def test_time_scale_shortens_windows(sim_clock: FakeClock) -> None:
    sim = Simulator(sim_clock)
    sim.add_org(ACME, "acme", shape="oauth_2025", time_scale=60)
    assert parse_ts(usage_of(sim, ACME)["five_hour"]["resets_at"]) == T0 + 300


# Credentials, faults and URL rules, as plain calls


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"Authorization": "Bearer "}, 429, "Rate limited. Please try again later."),
        ({"Authorization": "Bearer nope"}, 401, "Invalid bearer token"),
        ({"Authorization": "Bearer old"}, 401, "OAuth token has expired."),
        ({"Authorization": "Basic abc"}, 401, "Invalid authorization header"),
        ({"Cookie": "sessionKey=bad"}, 403, "account_session_invalid"),
        ({"Cookie": "other=1"}, 401, "Missing authentication credentials"),
        ({}, 401, "Missing authentication credentials"),
    ],
)
def test_authenticate_refusals(headers: dict[str, str], status: int, message: str) -> None:
    accounts = [
        SimAccount("a", (ACME,), token="good", session_key="sess"),
        SimAccount("b", (ACME,), token="old", expired=True),
    ]
    result = authenticate(headers, accounts)
    assert not isinstance(result, SimAccount)
    assert (result.status, result.message) == (status, message)


def test_authenticate_accepts_token_and_cookie() -> None:
    account = SimAccount("a", (ACME,), token="good", session_key="sess")
    assert authenticate({"Authorization": "Bearer good"}, [account]) is account
    assert authenticate({"Cookie": "lang=en; sessionKey=sess"}, [account]) is account


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://example.com/doc", ["https://example.com"]),
        ("https://example.com/docs/a", ["https://example.com/docs/"]),
        ("https://EXAMPLE.com/docs", ["https://example.com/docs"]),
    ],
)
def test_url_allowed(url: str, allowed: list[str]) -> None:
    assert url_allowed(url, allowed)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://example.com/doc", ["https://example.com"]),
        ("https://example.com.evil.io/", ["https://example.com"]),
        ("https://example.com/docsecret", ["https://example.com/docs"]),
        ("https://example.com:8443/", ["https://example.com"]),
        ("https://example.com/", ["not a url", ""]),
    ],
)
def test_url_refused(url: str, allowed: list[str]) -> None:
    assert not url_allowed(url, allowed)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "JSON object"),
        ({"status": "500"}, "status"),
        ({"status": True}, "status"),
        ({"status": 700}, "status"),
        ({"delay": -1}, "delay"),
        ({"delay": "1"}, "delay"),
        ({"drop": "yes"}, "drop"),
        ({"times": 0, "status": 500}, "times"),
        ({"body": "x"}, "body"),
        ({"drop": True, "status": 500}, "drop"),
        ({"cloudflare": True, "status": 500}, "cloudflare"),
        ({"colour": "red"}, "colour"),
        ({}, "does nothing"),
    ],
)
def test_fault_from_json_refuses(data: object, field: str) -> None:
    with pytest.raises(FaultError, match=field):
        Fault.from_json(data)


def test_fault_json_round_trip() -> None:
    fault = Fault(status=429, retry_after="0", delay=0.5, truncate=True, times=3)
    assert Fault.from_json(json.loads(json.dumps(fault.to_json()))) == fault


def test_model_hooks_refuse_what_cannot_exist(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="shape"):
        sim.add_org(NOBODY, "x", shape="nope")  # type: ignore[arg-type]  # a shape that does not exist
    with pytest.raises(ValueError, match="token or a session_key"):
        sim.add_account(org_uuids=[ACME])
    with pytest.raises(KeyError):
        sim.set_utilization(ACME, "five_hour", 10)


def test_fault_table_times_and_global_precedence() -> None:
    table = FaultTable()
    table.set(ACME, Fault(status=500, times=2))
    assert table.take(ACME) == Fault(status=500, times=2)
    assert table.take(GLOBEX) is None
    assert table.take(ACME) is not None
    assert table.take(ACME) is None
    table.set(ACME, Fault(status=500))
    table.set("*", Fault(cloudflare=True, times=1))
    assert table.take(ACME) == Fault(cloudflare=True, times=1)
    assert table.take(None) is None  # the global one was used up
    assert table.take(ACME) == Fault(status=500)
