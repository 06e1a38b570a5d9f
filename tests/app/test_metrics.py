"""/metrics of a running app: every series of the README's metrics table with its type,
values as the upstream said them, poll health, and what a failing org keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import __version__
from monitor.simulator import Fault, Simulator
from monitor.state import PollResult, UsageStore
from tests.conftest import Client, MakeClient
from tests.support.config import ORGS_ABC, make_config
from tests.support.docs import readme_metrics, usage_series
from tests.support.jobs import ManualJobs
from tests.support.metrics import org_labels
from tests.support.metrics import parse_metrics as parse
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, TOKEN_B, TOKEN_C, Upstream

USAGE_SERIES = usage_series()


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
async def polled(upstream: Upstream, driven: MakeClient, jobs: ManualJobs) -> Polled:
    """The app after its first polls of A, B and C (C has 401s), plus one proxied call."""
    sim = upstream.sim
    sim.set_fault(ORG_C, Fault(status=401))
    store = UsageStore()
    client = await driven(make_config(upstream.url, ORGS_ABC), store=store)
    assert await jobs.run_due() == 3
    assert (await client.get("/readyz")).status == 200
    proxied = await client.get(
        f"/api/organizations/{ORG_A}/usage", headers={"Authorization": f"Bearer {TOKEN_A}"}
    )
    assert proxied.status == 200
    text = await (await client.get("/metrics")).text()
    return Polled(sim, client, text, store, jobs)


# Exposed only while [otlp] is configured (tests/app/test_otlp_push.py checks it there).
ONLY_WITH_OTLP = frozenset({"claude_monitor_otlp_exports_total"})


async def test_every_documented_series_is_exposed_with_its_type(
    polled: Polled,
) -> None:
    text = polled.text
    for name, metric in readme_metrics().items():
        if name in ONLY_WITH_OTLP:
            continue
        kind = metric.type
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
