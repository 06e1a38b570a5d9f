"""/metrics: every SPEC section 4 series, values as the upstream said, promtool-clean."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor import __version__
from monitor.config_source import ConfigSource
from monitor.exposition import UsageExposition
from monitor.metrics import build_registry
from monitor.simulator import Fault, Simulator, simulator_app
from monitor.state import PollResult, UsageStore
from monitor.targets import OrgTarget, configured_targets
from monitor.usage import ExtraUsage, UsageSnapshot, UsageWindow
from tests.support.clock import FakeClock
from tests.support.jobs import ManualJobs
from tests.support.metrics import parse_metrics as parse
from tests.support.tools import require_tool
from tests.support.upstream import (
    ORG_A,
    ORG_B,
    ORG_C,
    TOKEN_A,
    TOKEN_B,
    TOKEN_C,
    USAGE_SERIES,
    make_config,
    standard_simulator,
)

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
MakeServer = Callable[..., Awaitable[TestServer]]
Labels = frozenset[tuple[str, str]]

NOW = 1_800_000_000.0
USAGE_SERIES = list(USAGE_SERIES)
TYPES = {
    **dict.fromkeys(USAGE_SERIES, "gauge"),
    "claude_usage_polls_total": "counter",
    "claude_proxy_requests_total": "counter",
    "claude_proxy_request_duration_seconds": "histogram",
    "claude_monitor_build_info": "gauge",
}


def frozen_simulator() -> Simulator:
    """The standard orgs, with time stopped so every answer is the same as the last."""
    return standard_simulator(FakeClock(NOW))


def org_labels(name: str, org_uuid: str, **more: str) -> Labels:
    return frozenset({"org": name, "org_uuid": org_uuid, **more}.items())


def expected_from_payload(payload: dict[str, Any]) -> dict[str, dict[str, float]]:
    """What the exposition must show for one raw payload, computed without parse_usage."""
    ratios: dict[str, float] = {}
    resets: dict[str, float] = {}
    for key, value in payload.items():
        if not isinstance(value, dict) or not ({"utilization", "resets_at"} & set(value)):
            continue
        if isinstance(value.get("utilization"), int | float):
            ratios[key] = value["utilization"] / 100
        if isinstance(value.get("resets_at"), str):
            resets[key] = datetime.fromisoformat(value["resets_at"]).timestamp()
    extra: dict[str, float] = {}
    raw = payload.get("extra_usage")
    if isinstance(raw, dict):
        if isinstance(raw.get("is_enabled"), bool):
            extra["claude_usage_extra_enabled"] = float(raw["is_enabled"])
        limit = raw.get("monthly_limit", raw.get("monthly_credit_limit"))
        if limit is not None:
            extra["claude_usage_extra_monthly_limit_credits"] = float(limit)
        if raw.get("used_credits") is not None:
            extra["claude_usage_extra_used_credits"] = float(raw["used_credits"])
    return {"ratios": ratios, "resets": resets, "extra": extra}


@dataclass
class Polled:
    sim: Simulator
    client: Client
    text: str
    store: UsageStore
    jobs: ManualJobs


@pytest.fixture
async def frozen(aiohttp_server: MakeServer) -> tuple[Simulator, str]:
    sim = frozen_simulator()
    server = await aiohttp_server(simulator_app(sim))
    return sim, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def polled(frozen: tuple[Simulator, str], driven: MakeClient, jobs: ManualJobs) -> Polled:
    """The app after its first polls of A, B and C (C has 401s), plus one proxied call."""
    sim, url = frozen
    sim.set_fault(ORG_C, Fault(status=401))
    orgs = [
        {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
        {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
        {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_C"},
    ]
    store = UsageStore()
    client = await driven(make_config(url, orgs), store=store)
    assert await jobs.run_due() == 3
    assert (await client.get("/readyz")).status == 200
    proxied = await client.get(
        f"/api/organizations/{ORG_A}/usage", headers={"Authorization": f"Bearer {TOKEN_A}"}
    )
    assert proxied.status == 200
    text = await (await client.get("/metrics")).text()
    return Polled(sim, client, text, store, jobs)


# -- the exposition of a running app -----------------------------------------------------


async def test_every_spec_series_is_exposed_with_its_type(
    polled: Polled,
) -> None:
    text = polled.text
    for name, kind in TYPES.items():
        assert f"# TYPE {name} {kind}\n" in text, name
    series = parse(text)
    for name in [*USAGE_SERIES, "claude_proxy_requests_total", "claude_monitor_build_info"]:
        assert series.get(name), f"{name} has no sample"
    assert series["claude_monitor_build_info"] == {frozenset({("version", __version__)}): 1.0}
    assert "claude_proxy_request_duration_seconds_bucket" in series


async def test_usage_values_match_what_the_simulator_said(
    polled: Polled,
) -> None:
    sim, text = polled.sim, polled.text
    series = parse(text)
    for org_uuid, name in ((ORG_A, "acme"), (ORG_B, "beta")):
        want = expected_from_payload(sim.usage(org_uuid))
        assert want["ratios"], "the simulator should report some utilization"
        got_ratios = {
            dict(labels)["window"]: value
            for labels, value in series["claude_usage_utilization_ratio"].items()
            if dict(labels)["org_uuid"] == org_uuid
        }
        assert got_ratios == pytest.approx(want["ratios"])
        got_resets = {
            dict(labels)["window"]: value
            for labels, value in series["claude_usage_resets_at_timestamp_seconds"].items()
            if dict(labels)["org_uuid"] == org_uuid
        }
        assert got_resets == pytest.approx(want["resets"])
        for metric, value in want["extra"].items():
            assert series[metric][org_labels(name, org_uuid)] == value, metric
        for metric in (
            "claude_usage_extra_enabled",
            "claude_usage_extra_monthly_limit_credits",
            "claude_usage_extra_used_credits",
        ):
            if metric not in want["extra"]:
                assert org_labels(name, org_uuid) not in series.get(metric, {})
        assert series["claude_usage_up"][org_labels(name, org_uuid)] == 1.0
        success = org_labels(name, org_uuid, result="success")
        assert series["claude_usage_polls_total"][success] >= 1.0


async def test_poll_health_series(polled: Polled) -> None:
    text = polled.text
    series = parse(text)
    gamma = org_labels("gamma", ORG_C)
    assert series["claude_usage_up"][gamma] == 0.0
    assert gamma not in series.get("claude_usage_last_success_timestamp_seconds", {})
    assert not any(
        dict(labels)["org_uuid"] == ORG_C for labels in series["claude_usage_utilization_ratio"]
    )
    polls = series["claude_usage_polls_total"]
    assert polls[org_labels("gamma", ORG_C, result="unauthorized")] >= 1.0
    # every result label is there for every org, 0 until it happens
    for result in PollResult:
        assert org_labels("acme", ORG_A, result=result.value) in polls
    state = polled.store.get(ORG_A)
    assert state is not None
    acme = org_labels("acme", ORG_A)
    assert series["claude_usage_last_success_timestamp_seconds"][acme] == state.last_success
    assert 0 < series["claude_usage_poll_duration_seconds"][acme] < 5
    assert series["claude_usage_next_poll_timestamp_seconds"][acme] > (state.last_success or 0)


async def test_help_says_usage_values_are_cached(polled: Polled) -> None:
    text = polled.text
    for name in USAGE_SERIES[:5]:
        help_line = next(line for line in text.splitlines() if line.startswith(f"# HELP {name} "))
        assert "cached" in help_line.lower(), help_line


async def test_no_sample_timestamps_and_no_secrets(polled: Polled) -> None:
    text = polled.text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.timestamp is None, sample
    for secret in (TOKEN_A, TOKEN_B, TOKEN_C):
        assert secret not in text


async def test_the_exposition_passes_promtool(polled: Polled) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    text = polled.text
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == ""
    assert checked.stderr.strip() == ""


async def test_a_failing_org_keeps_its_values_in_the_exposition(
    polled: Polled,
) -> None:
    sim, client, text = polled.sim, polled.client, polled.text
    before = parse(text)
    sim.set_fault(ORG_A, Fault(status=500))
    await polled.jobs.advance(1.0)  # the next poll of every org is due after 1 s
    state = polled.store.get(ORG_A)
    assert state is not None and state.last_result is PollResult.SERVER_ERROR
    after = parse(await (await client.get("/metrics")).text())
    acme = org_labels("acme", ORG_A)
    assert after["claude_usage_up"][acme] == 0.0
    for name in ("claude_usage_utilization_ratio", "claude_usage_resets_at_timestamp_seconds"):
        mine = {k: v for k, v in before[name].items() if dict(k)["org_uuid"] == ORG_A}
        assert mine
        assert {k: v for k, v in after[name].items() if dict(k)["org_uuid"] == ORG_A} == mine


# -- the collector on a hand-made store ---------------------------------------------------


def make_target(org_uuid: str = ORG_A, name: str = "acme") -> OrgTarget:
    config = make_config(
        "http://upstream.test", [{"uuid": org_uuid, "name": name, "token_env": "TOKEN_A"}]
    )
    return configured_targets(config)[0]


def render(store: UsageStore) -> dict[str, dict[Labels, float]]:
    """Everything `/metrics` would show for this store."""
    registry, _ = build_registry(ConfigSource(make_config("http://upstream.test"), loaded_at=NOW))
    usage = b"".join(asyncio.run(UsageExposition(store).render_chunks()))
    return parse((usage + generate_latest(registry)).decode())


def test_null_values_are_no_series_never_zero() -> None:
    store = UsageStore()
    store.set_targets([make_target()])
    snapshot = UsageSnapshot(
        windows=(
            UsageWindow("five_hour", 0.5, None),
            UsageWindow("seven_day", None, NOW + 10),
            UsageWindow("projects", None, None),
        ),
        extra=ExtraUsage(is_enabled=None, monthly_limit=None, used_credits=12.0),
    )
    store.record_success(ORG_A, snapshot, end=NOW, duration=0.25)
    series = render(store)
    ratio = series["claude_usage_utilization_ratio"]
    assert ratio == {org_labels("acme", ORG_A, window="five_hour"): 0.5}
    assert series["claude_usage_resets_at_timestamp_seconds"] == {
        org_labels("acme", ORG_A, window="seven_day"): NOW + 10
    }
    assert "claude_usage_extra_enabled" not in series
    assert "claude_usage_extra_monthly_limit_credits" not in series
    assert series["claude_usage_extra_used_credits"] == {org_labels("acme", ORG_A): 12.0}
    assert series["claude_usage_poll_duration_seconds"] == {org_labels("acme", ORG_A): 0.25}


def test_a_ratio_over_one_and_extra_disabled() -> None:
    store = UsageStore()
    store.set_targets([make_target()])
    snapshot = UsageSnapshot(
        windows=(UsageWindow("five_hour", 1.1, None),),
        extra=ExtraUsage(is_enabled=False, monthly_limit=0.0, used_credits=0.0),
    )
    store.record_success(ORG_A, snapshot, end=NOW, duration=0.1)
    series = render(store)
    acme = org_labels("acme", ORG_A)
    assert series["claude_usage_utilization_ratio"][
        org_labels("acme", ORG_A, window="five_hour")
    ] == pytest.approx(1.1)
    assert series["claude_usage_extra_enabled"] == {acme: 0.0}
    assert series["claude_usage_extra_monthly_limit_credits"] == {acme: 0.0}


def test_an_org_never_polled_has_only_counters() -> None:
    store = UsageStore()
    store.set_targets([make_target()])
    store.set_next_poll(ORG_A, NOW + 5)
    series = render(store)
    for name in ("claude_usage_up", "claude_usage_last_success_timestamp_seconds"):
        assert name not in series
    assert series["claude_usage_next_poll_timestamp_seconds"] == {
        org_labels("acme", ORG_A): NOW + 5
    }
    assert set(series["claude_usage_polls_total"].values()) == {0.0}


def test_an_org_or_window_that_disappears_disappears() -> None:
    store = UsageStore()
    store.set_targets([make_target(), make_target(ORG_B, "beta")])
    two = UsageSnapshot(
        windows=(UsageWindow("five_hour", 0.1, NOW), UsageWindow("seven_day", 0.2, NOW)),
        extra=None,
    )
    store.record_success(ORG_A, two, end=NOW, duration=0.1)
    store.record_success(ORG_B, two, end=NOW, duration=0.1)
    assert len(render(store)["claude_usage_utilization_ratio"]) == 4

    one = UsageSnapshot(windows=(UsageWindow("five_hour", 0.3, NOW),), extra=None)
    store.record_success(ORG_A, one, end=NOW + 60, duration=0.1)
    ratios = render(store)["claude_usage_utilization_ratio"]
    assert org_labels("acme", ORG_A, window="seven_day") not in ratios
    assert ratios[org_labels("acme", ORG_A, window="five_hour")] == pytest.approx(0.3)

    store.set_targets([make_target()])
    series = render(store)
    for samples in series.values():
        assert all(dict(labels).get("org_uuid") != ORG_B for labels in samples)


async def test_a_cached_render_is_the_same_text_as_a_fresh_one() -> None:
    store = UsageStore()
    targets = [make_target(f"00000000-0000-4000-8000-{n:012d}", f"org{n}") for n in range(250)]
    store.set_targets(targets)
    for target in targets[::2]:
        snapshot = UsageSnapshot(windows=(UsageWindow("five_hour", 0.25, NOW),), extra=None)
        store.record_success(target.uuid, snapshot, end=NOW, duration=0.1)
    exposition = UsageExposition(store)
    first = b"".join(await exposition.render_chunks()).decode()
    assert first.count("claude_usage_utilization_ratio{") == 125
    # The second scrape reuses each org's cached lines: the same text as a fresh render.
    cached = b"".join(await exposition.render_chunks()).decode()
    fresh = b"".join(await UsageExposition(store).render_chunks()).decode()
    assert cached == first == fresh
