"""The poller inside the app, over real HTTP against the simulator (or a slow fake), with
the test's clock and scheduler: polls run when the test moves time, never by sleeping."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from monitor.app import reload_config
from monitor.cli import poll_every_org_once
from monitor.failure_log import REMINDER_SECONDS
from monitor.jobs import APSchedulerJobs
from monitor.simulator import Fault
from monitor.state import PollResult, UsageStore
from monitor.usage import parse_usage
from tests.conftest import MakeClient, MakeParts, MakeServer
from tests.support.clock import FakeClock
from tests.support.config import make_config
from tests.support.fakes import SlowUpstream
from tests.support.jobs import ManualJobs
from tests.support.metrics import org_uuids, scrape, value
from tests.support.upstream import (
    ALL_TEST_SECRETS,
    ORG_A,
    ORG_B,
    ORG_C,
    TOKEN_A,
    Upstream,
    base_url,
)
from tests.support.waiting import until

READY_AB = {"status": "ready", "orgs": 2, "pending_orgs": [], "pending_accounts": []}
SHARED = [
    {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
    {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_A"},
    {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
]


# -- health and readiness ----------------------------------------------------------------


async def test_healthz(driven: MakeClient, upstream: Upstream) -> None:
    client = await driven(make_config(upstream.url))
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_readyz_lists_pending_orgs_until_their_first_poll_ends(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    client = await driven(make_config(upstream.url))
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "waiting"
    assert sorted(o["org_uuid"] for o in body["pending_orgs"]) == sorted([ORG_A, ORG_B])
    assert {o["org"] for o in body["pending_orgs"]} == {"acme", "beta"}

    assert await jobs.run_due() == 2  # the first polls, both due at once
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == READY_AB


async def test_readyz_waits_for_discovery_too(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    config = make_config(upstream.url, [], accounts=[{"name": "me", "token_env": "TOKEN_B"}])
    client = await driven(config)
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["pending_accounts"] == ["me"]
    await jobs.run_due()  # discovery, then the first poll of the org it found
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["orgs"] == 1


async def test_a_failed_first_poll_still_counts_as_ready(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=500))
    store = UsageStore()
    client = await driven(make_config(upstream.url), store=store)
    await jobs.run_due()
    assert (await client.get("/readyz")).status == 200
    state = store.get(ORG_B)
    assert state is not None
    assert state.last_result is PollResult.SERVER_ERROR


# -- polls and what they leave -----------------------------------------------------------


async def test_a_failing_org_keeps_its_last_good_usage_with_up_0(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    store = UsageStore()
    client = await driven(make_config(upstream.url), store=store)
    await jobs.run_due()
    _, before = await scrape(client)
    assert value(before, "claude_usage_up", org_uuid=ORG_A) == 1.0
    good = store.get(ORG_A)
    assert good is not None
    assert good.snapshot is not None
    kept = good.snapshot

    upstream.sim.set_fault(ORG_A, Fault(status=503))
    await jobs.advance(1.0)  # the interval: org A's next poll
    _, after = await scrape(client)
    assert value(after, "claude_usage_up", org_uuid=ORG_A) == 0.0
    failed = value(after, "claude_usage_polls_total", org_uuid=ORG_A, result="server_error")
    assert failed is not None and failed >= 1
    for window in kept.windows:
        if window.utilization is not None:
            ratio = value(
                after, "claude_usage_utilization_ratio", org_uuid=ORG_A, window=window.name
            )
            assert ratio == pytest.approx(window.utilization)
    last_success = "claude_usage_last_success_timestamp_seconds"
    assert value(after, last_success, org_uuid=ORG_A) == value(before, last_success, org_uuid=ORG_A)
    assert value(after, "claude_usage_up", org_uuid=ORG_B) == 1.0


async def test_a_change_upstream_shows_on_the_next_poll(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    client = await driven(make_config(upstream.url))
    await jobs.run_due()
    upstream.sim.set_utilization(ORG_A, "claude_code", 77.0)
    await jobs.advance(1.0)  # the interval: the next poll
    _, samples = await scrape(client)
    ratio = value(samples, "claude_usage_utilization_ratio", org_uuid=ORG_A, window="claude_code")
    assert ratio is not None and 0.77 <= ratio < 0.80


async def test_a_rate_limited_org_is_not_hammered(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=429, retry_after="0"))
    config = make_config(upstream.url, poll={"interval_seconds": 1, "max_interval_seconds": 2})
    store = UsageStore()
    await driven(config, store=store)
    # Org A keeps being polled at least every 2 s; go on until three of its polls.
    await jobs.advance_until(lambda: len(upstream.sim.requests_for(ORG_A)) >= 3, "3 polls of A")
    limited = upstream.sim.requests_for(ORG_B)
    assert 1 <= len(limited) <= 2, [r.time for r in limited]
    if len(limited) == 2:
        # the first back-off is max_interval (2 s), jitter shortens it by 20 % at most
        assert limited[1].time - limited[0].time >= 1.5
    state = store.get(ORG_B)
    assert state is not None
    assert state.last_result is PollResult.RATE_LIMITED
    assert state.next_poll is not None
    assert state.last_poll_end is not None
    assert state.next_poll - state.last_poll_end >= 1.5


async def test_a_retry_after_is_honoured(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=429, retry_after="120"))
    store = UsageStore()
    await driven(make_config(upstream.url), store=store)
    await jobs.run_due()
    state = store.get(ORG_B)
    assert state is not None
    assert state.results[PollResult.RATE_LIMITED] == 1
    assert state.next_poll is not None
    assert state.last_poll_end is not None
    assert state.next_poll - state.last_poll_end == pytest.approx(120, abs=1)
    await jobs.advance(119.0)  # org A is polled meanwhile, org B is left alone
    assert len(upstream.sim.requests_for(ORG_B)) == 1
    assert len(upstream.sim.requests_for(ORG_A)) > 1


# -- orgs sharing a credential -----------------------------------------------------------


async def test_orgs_sharing_a_credential_are_never_polled_at_once(
    aiohttp_server: MakeServer,
) -> None:
    probe = SlowUpstream(delay=0.3)
    server = await aiohttp_server(probe.app())
    config = make_config(base_url(server), SHARED)

    states = await poll_every_org_once(config)

    results = {state.target.uuid: state.last_result for state in states}
    assert results == dict.fromkeys([ORG_A, ORG_C, ORG_B], PollResult.SUCCESS)
    assert probe.most_by_credential[f"Bearer {TOKEN_A}"] == 1
    # different credentials are not serialised behind each other
    assert probe.max_in_flight == 2


async def test_shared_credential_holds_while_the_scheduler_runs(
    driven: MakeClient, jobs: ManualJobs, aiohttp_server: MakeServer
) -> None:
    """The scheduler starts every due poll at once; the credential's lock still serialises
    the two orgs that share it, round after round."""
    probe = SlowUpstream(delay=0.05)
    server = await aiohttp_server(probe.app())
    await driven(make_config(base_url(server), SHARED))
    await jobs.advance_until(lambda: probe.seen.count(ORG_C) >= 2, "two polls of org C")
    assert probe.most_by_credential[f"Bearer {TOKEN_A}"] == 1
    assert probe.max_in_flight == 2  # org B's own credential did not wait


# -- config changes, secrets, shutdown, logs ------------------------------------------------


async def test_an_org_removed_from_the_config_vanishes(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    client = await driven(make_config(upstream.url))
    await jobs.run_due()
    _, samples = await scrape(client)
    assert org_uuids(samples) == {ORG_A, ORG_B}

    assert reload_config(
        client.app, lambda: make_config(upstream.url, [{"uuid": ORG_A, "token_env": "TOKEN_A"}])
    )

    text, samples = await scrape(client)
    assert org_uuids(samples) == {ORG_A}
    assert ORG_B not in text
    # and it is no longer polled
    polls_of_b = len(upstream.sim.requests_for(ORG_B))
    polls_of_a = len(upstream.sim.requests_for(ORG_A))
    await jobs.advance_until(
        lambda: len(upstream.sim.requests_for(ORG_A)) >= polls_of_a + 2, "two more polls of A"
    )
    assert len(upstream.sim.requests_for(ORG_B)) == polls_of_b


async def test_no_credential_in_logs_or_metrics(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f'{{"error": {{"message": "token {TOKEN_A} has expired"}}}}'
    upstream.sim.set_fault(ORG_A, Fault(status=401, body=echo))
    config = make_config(upstream.url, accounts=[{"token_env": "TOKEN_C"}])
    client = await driven(config)
    await jobs.run_due()
    assert (await client.get("/readyz")).status == 200
    text, _ = await scrape(client)
    await client.close()
    logged = "\n".join([r.getMessage() for r in caplog.records] + [caplog.text])
    assert "poll failed" in logged
    for secret in ALL_TEST_SECRETS:
        assert secret not in logged
        assert secret not in text


async def test_the_scheduler_stops_with_the_app(
    make_client: MakeClient, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """On the real APScheduler: closing the app while a poll and a discovery are both in
    flight leaves no task behind and logs no error."""
    upstream.sim.set_fault("*", Fault(delay=1.0))
    config = make_config(upstream.url, accounts=[{"token_env": "TOKEN_C"}])
    jobs = APSchedulerJobs()
    client = await make_client(config, jobs=jobs)
    await until(lambda: len(upstream.sim.requests) >= 2, "requests in flight")
    assert jobs.started
    await client.close()

    assert not jobs.started
    for _ in range(3):
        await asyncio.sleep(0)  # let cancelled tasks finish unwinding
    mine = [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not task.done()
        and any(
            name in repr(task.get_coro())
            for name in ("Poller", "Discovery", "_poll_job", "_job", "poll", "discover")
        )
    ]
    assert mine == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_logs_one_warning_per_failure_and_one_recovery(
    upstream: Upstream, caplog: pytest.LogCaptureFixture, make_parts: MakeParts, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.poller")
    poller = (await make_parts(make_config(upstream.url), clock=clock)).poller
    poller.apply_targets()

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "monitor.poller"]

    upstream.sim.set_fault(ORG_A, Fault(status=500))
    for _ in range(5):
        assert await poller.poll(ORG_A) is PollResult.SERVER_ERROR
        clock.advance(60)
    failures = [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.WARNING
    assert "org=acme" in failures[0].getMessage()
    assert "server_error" in failures[0].getMessage()
    assert "\n" not in failures[0].getMessage()

    clock.advance(REMINDER_SECONDS)  # ten minutes later: a reminder
    await poller.poll(ORG_A)
    reminders = [line for line in lines() if "poll failed (still)" in line]
    assert len(reminders) == 1

    upstream.sim.set_fault(ORG_A, Fault(status=404))  # a different failure: logged
    await poller.poll(ORG_A)
    assert len([line for line in lines() if "result=not_found" in line]) == 1

    upstream.sim.clear_fault(ORG_A)
    caplog.clear()
    for _ in range(3):
        assert await poller.poll(ORG_A) is PollResult.SUCCESS
    recovered = [line for line in lines() if "recovered" in line]
    assert recovered == ["poll recovered: org=acme (was not_found)"]
    assert not [line for line in lines() if "poll failed" in line]

    # failing again after a recovery is news, even within ten minutes
    upstream.sim.set_fault(ORG_A, Fault(status=404))
    await poller.poll(ORG_A)
    assert len([line for line in lines() if "poll failed" in line]) == 1


async def test_a_steady_failure_logs_once_in_a_running_app(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.poller")
    upstream.sim.set_fault(ORG_B, Fault(status=500))
    store = UsageStore()
    await driven(make_config(upstream.url), store=store)

    def failed_twice() -> bool:
        state = store.get(ORG_B)
        return state is not None and state.results[PollResult.SERVER_ERROR] >= 2

    await jobs.advance_until(failed_twice, "two failed polls of org B")
    failures = [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert len(failures) == 1
    assert "org=beta" in failures[0].getMessage()


async def test_poll_all_polls_every_org_once(upstream: Upstream, make_parts: MakeParts) -> None:
    parts = await make_parts(make_config(upstream.url))
    store = parts.store
    parts.poller.apply_targets()
    results = await parts.poller.poll_all()
    assert results == {ORG_A: PollResult.SUCCESS, ORG_B: PollResult.SUCCESS}
    for org_uuid in (ORG_A, ORG_B):
        state = store.get(org_uuid)
        assert state is not None
        assert state.snapshot is not None
        expected = parse_usage(upstream.sim.usage(org_uuid))
        assert [w.name for w in state.snapshot.windows] == [w.name for w in expected.windows]
        assert len(upstream.sim.requests_for(org_uuid)) == 1


async def test_an_unexpected_error_is_counted_and_polling_goes_on(
    make_parts: MakeParts, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    parts = await make_parts(make_config(upstream.url))
    poller = parts.poller
    poller.apply_targets()
    fetch = parts.upstream.fetch_usage
    calls = 0

    async def broken_once(target: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in parsing")
        return await fetch(target)

    parts.upstream.fetch_usage = broken_once  # type: ignore[method-assign]  # a bug, injected
    assert await poller.poll(ORG_A) is PollResult.INVALID_RESPONSE
    state = parts.store.get(ORG_A)
    assert state is not None
    assert "unexpected RuntimeError" in (state.last_error or "")
    assert "unexpected error polling org=acme" in caplog.text
    assert await poller.poll(ORG_A) is PollResult.SUCCESS


async def test_the_openapi_document_is_served(driven: MakeClient, upstream: Upstream) -> None:
    client = await driven(make_config(upstream.url))
    response = await client.get("/openapi.yaml")
    assert response.status == 200
    assert response.content_type == "application/yaml"
    text = await response.text()
    assert text.startswith("openapi: ") or "\nopenapi: " in text
    assert "/api/organizations/{org_uuid}/usage" in text
