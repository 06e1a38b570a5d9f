"""Discovery inside the app: an `[[accounts]]` credential's orgs are found, polled once
each, and follow the account as the hourly rediscovery sees it (time driven by the test)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from monitor.app import reload_config
from monitor.discovery import DISCOVERY_INTERVAL_SECONDS
from monitor.simulator import Simulator
from monitor.state import UsageStore
from tests.conftest import MakeClient
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.metrics import labels, org_uuids, scrape
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, Upstream

SLOW_POLLS = {"interval_seconds": 60, "max_interval_seconds": 300}


def change_account_a(sim: Simulator, **changes: Any) -> None:
    """Change what the upstream says about TOKEN_A's account."""
    key, account = next((k, a) for k, a in sim.accounts.items() if a.token == TOKEN_A)
    sim.accounts[key] = dataclasses.replace(account, **changes)


async def test_discovery_polls_each_org_once_even_when_also_configured(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    config = make_config(
        upstream.url,
        [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"}],
        accounts=[{"token_env": "TOKEN_A"}],
        poll=SLOW_POLLS,
    )
    client = await driven(config)
    await jobs.run_due()  # discovery and the first polls
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["orgs"] == 2
    assert len(upstream.sim.requests_for(ORG_A)) == 1
    assert len(upstream.sim.requests_for(ORG_C)) == 1
    _, samples = await scrape(client)
    assert org_uuids(samples) == {ORG_A, ORG_C}
    ups = samples["claude_usage_up"]
    assert len(ups) == 2
    # the configured name wins; the discovered org is named as the upstream names it
    assert labels(org="acme", org_uuid=ORG_A) in ups
    assert labels(org="gamma", org_uuid=ORG_C) in ups


async def test_discovery_only_config(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    config = make_config(upstream.url, [], accounts=[{"token_env": "TOKEN_A"}])
    store = UsageStore()
    client = await driven(config, store=store)
    await jobs.run_due()
    assert (await client.get("/readyz")).status == 200
    assert sorted(s.target.uuid for s in store) == sorted([ORG_A, ORG_C])


async def test_an_org_that_leaves_discovery_leaves_metrics(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    config = make_config(upstream.url, [], accounts=[{"token_env": "TOKEN_A"}], poll=SLOW_POLLS)
    client = await driven(config)
    await jobs.run_due()  # discovery, then the first polls of what it found
    _, samples = await scrape(client)
    assert org_uuids(samples) == {ORG_A, ORG_C}

    change_account_a(upstream.sim, org_uuids=(ORG_A,))
    await jobs.advance(DISCOVERY_INTERVAL_SECONDS)  # the hourly discovery

    text, samples = await scrape(client)
    assert org_uuids(samples) == {ORG_A}
    assert ORG_C not in text


async def test_a_failed_discovery_keeps_the_orgs_it_found(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(upstream.url, [], accounts=[{"token_env": "TOKEN_A"}], poll=SLOW_POLLS)
    client = await driven(config)
    await jobs.run_due()
    change_account_a(upstream.sim, expired=True)  # bootstrap gets 401
    await jobs.advance(DISCOVERY_INTERVAL_SECONDS)
    assert [r.path for r in upstream.sim.requests].count("/api/bootstrap") == 2
    assert "discovery failed: account=accounts[0] result=unauthorized" in caplog.text
    _, samples = await scrape(client)
    assert org_uuids(samples) == {ORG_A, ORG_C}


async def test_a_reload_keeps_what_an_unchanged_account_found_and_drops_a_removed_one(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    accounts = [{"name": "a", "token_env": "TOKEN_A"}, {"name": "b", "token_env": "TOKEN_B"}]
    config = make_config(upstream.url, [], accounts=accounts, poll=SLOW_POLLS)
    store = UsageStore()
    client = await driven(config, store=store)
    await jobs.run_due()
    assert {s.target.uuid for s in store} == {ORG_A, ORG_B, ORG_C}

    fewer = make_config(upstream.url, [], accounts=accounts[:1], poll=SLOW_POLLS)
    assert reload_config(client.app, lambda: fewer)
    # account a kept its orgs at once; b's org left with b, and b's job is gone
    assert {s.target.uuid for s in store} == {ORG_A, ORG_C}
    assert "discover:1" not in jobs.jobs
    await jobs.run_due()  # every remaining account is asked again after a reload
    assert [r.path for r in upstream.sim.requests].count("/api/bootstrap") == 3
