"""The usage exposition on a hand-made store: what `/metrics` shows for each state an org
can be in, and the render cache."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest

from monitor.config_source import ConfigSource
from monitor.exposition import UsageExposition
from monitor.metrics import build_registry
from monitor.state import PollResult, UsageStore
from monitor.targets import OrgTarget, configured_targets
from monitor.usage import ExtraUsage, UsageSnapshot, UsageWindow
from tests.support.config import make_config
from tests.support.metrics import Samples, org_labels, parse_metrics
from tests.support.upstream import ORG_A, ORG_B

NOW = 1_800_000_000.0


def make_target(org_uuid: str = ORG_A, name: str = "acme") -> OrgTarget:
    config = make_config(
        "http://upstream.test", [{"uuid": org_uuid, "name": name, "token_env": "TOKEN_A"}]
    )
    return configured_targets(config)[0]


def render(store: UsageStore) -> Samples:
    """Everything `/metrics` would show for this store."""
    registry, _ = build_registry(ConfigSource(make_config("http://upstream.test"), loaded_at=NOW))
    usage = b"".join(asyncio.run(UsageExposition(store).render_chunks()))
    return parse_metrics((usage + generate_latest(registry)).decode())


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
    # The second scrape reuses each block's cached text: the same as a fresh render.
    cached = b"".join(await exposition.render_chunks()).decode()
    fresh = b"".join(await UsageExposition(store).render_chunks()).decode()
    assert cached == first == fresh


def test_an_outcome_for_an_org_that_left_meanwhile_is_dropped() -> None:
    """A poll or a relayed answer that ends after a reload removed its org changes nothing."""
    store = UsageStore()
    store.set_targets([make_target()])
    snapshot = UsageSnapshot(windows=(UsageWindow("five_hour", 0.5, None),), extra=None)
    assert store.record_success(ORG_B, snapshot, end=NOW, duration=0.1) is None
    assert store.record_failure(ORG_B, PollResult.TIMEOUT, "slow", end=NOW, duration=1) is None
    assert store.record_relayed(ORG_B, snapshot) is False
    assert ORG_B not in store
    assert set(render(store)["claude_usage_polls_total"].values()) == {0.0}
