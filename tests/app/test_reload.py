"""A reload in-process: orgs added, removed and kept, a bad file refused; and a sharded app
polling only its orgs. (SIGHUP to a real process: `tests/system/test_sighup.py`.)"""

from __future__ import annotations

import pytest

from monitor.app import reload_config
from monitor.config import ConfigError
from monitor.schema import Config
from monitor.sharding import shard_of
from monitor.state import UsageStore
from tests.conftest import MakeClient
from tests.support.config import ORGS_ABC, make_config
from tests.support.jobs import ManualJobs
from tests.support.metrics import metric_lines
from tests.support.upstream import ORG_A, ORG_B, ORG_C, Upstream


async def test_sharded_app_polls_only_its_orgs(
    upstream: Upstream, driven: MakeClient, jobs: ManualJobs
) -> None:
    count = 3
    mine = {o["uuid"] for o in ORGS_ABC if shard_of(o["uuid"], count) == 1}
    config = make_config(upstream.url, orgs=ORGS_ABC, poll={"shard": f"1/{count}"})
    store = UsageStore()
    client = await driven(config, store=store)
    assert {state.target.uuid for state in store} == mine
    await jobs.run_due()
    assert (await client.get("/readyz")).status == 200
    polled = {r.org_uuid for r in upstream.sim.requests if r.org_uuid}
    assert polled == mine


async def test_reload_adds_removes_and_keeps_orgs(
    upstream: Upstream, driven: MakeClient, jobs: ManualJobs
) -> None:
    config = make_config(upstream.url, orgs=ORGS_ABC[:2])
    store = UsageStore()
    client = await driven(config, store=store)
    await jobs.run_due()
    acme_before = store.get(ORG_A)
    assert acme_before is not None and acme_before.snapshot is not None
    polls_before = dict(acme_before.results)

    new = make_config(upstream.url, orgs=[ORGS_ABC[0], ORGS_ABC[2]])
    assert reload_config(client.app, lambda: new)
    assert {s.target.uuid for s in store} == {ORG_A, ORG_C}
    acme_after = store.get(ORG_A)
    assert acme_after is acme_before  # untouched org: same state, history kept
    assert all(acme_after.results[k] >= v for k, v in polls_before.items())
    await jobs.run_due()  # the added org's first poll is due at once
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    up = metric_lines(text, "claude_usage_up")
    assert any(f'org_uuid="{ORG_C}"' in line for line in up)
    assert not any(f'org_uuid="{ORG_B}"' in line for line in up)
    ok = metric_lines(text, "claude_monitor_config_last_reload_successful")
    assert ok == ["claude_monitor_config_last_reload_successful 1.0"]


async def test_invalid_reload_keeps_running_config(
    upstream: Upstream, driven: MakeClient, jobs: ManualJobs, caplog: pytest.LogCaptureFixture
) -> None:
    store = UsageStore()
    client = await driven(make_config(upstream.url), store=store)
    await jobs.run_due()
    before = {s.target.uuid for s in store}

    def broken() -> Config:
        raise ConfigError(["orgs[0].uuid: not a UUID (got 'x')", "poll.bogus: unknown key"], "c")

    assert not reload_config(client.app, broken)
    assert {s.target.uuid for s in store} == before
    assert "orgs[0].uuid: not a UUID" in caplog.text and "poll.bogus" in caplog.text
    text = await (await client.get("/metrics")).text()
    ok = metric_lines(text, "claude_monitor_config_last_reload_successful")
    assert ok == ["claude_monitor_config_last_reload_successful 0.0"]
    polls = len(upstream.sim.requests)
    await jobs.advance(1.0)  # the next polls are due after the interval
    assert (await client.get("/readyz")).status == 200
    assert {s.target.uuid for s in store} == before  # still polling the old orgs
    assert {r.org_uuid for r in list(upstream.sim.requests)[polls:]} == before
