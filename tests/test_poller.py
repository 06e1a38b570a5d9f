"""The poller inside the app, over real HTTP against the simulator (or small fakes)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from monitor.app import Parts, create_app, reload_config
from monitor.cli import poll_every_org_once
from monitor.discovery import DISCOVERY_INTERVAL_SECONDS
from monitor.failure_log import REMINDER_SECONDS
from monitor.jobs import APSchedulerJobs
from monitor.schema import Config
from monitor.simulator import Fault
from monitor.state import PollResult, UsageStore
from monitor.usage import parse_usage
from tests.support.clock import FakeClock
from tests.support.jobs import ManualJobs
from tests.support.upstream import (
    ALL_TEST_SECRETS,
    ORG_A,
    ORG_B,
    ORG_C,
    TOKEN_A,
    Upstream,
    make_config,
)

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
MakeServer = Callable[..., Awaitable[TestServer]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def until(
    condition: Callable[[], Any], what: str, *, tries: int = 200, step: float = 0.05
) -> Any:
    """Wait for `condition()` (sync or async) to be truthy, checking at most `tries` times."""
    for _ in range(tries):
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError(f"gave up waiting for {what}")


MakeParts = Callable[..., Awaitable[Parts]]


async def start(aiohttp_client: MakeClient, config: Config, **options: Any) -> Client:
    return await aiohttp_client(create_app(config, **options))


async def wait_ready(client: Client) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        response = await client.get("/readyz")
        body: dict[str, Any] = await response.json()
        return body if response.status == 200 else None

    result: dict[str, Any] = await until(ready, "/readyz to answer 200")
    return result


async def scrape(client: Client) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def org_value(samples: Samples, name: str, org_uuid: str, **labels: str) -> float | None:
    for (sample, found), value in samples.items():
        found_labels = dict(found)
        wanted = {"org_uuid": org_uuid, **labels}
        if sample == name and all(found_labels.get(k) == v for k, v in wanted.items()):
            return value
    return None


def orgs_in(samples: Samples) -> set[str]:
    return {dict(labels)["org_uuid"] for _, labels in samples if "org_uuid" in dict(labels)}


# -- health and readiness ----------------------------------------------------------------


async def test_healthz(aiohttp_client: MakeClient, upstream: Upstream) -> None:
    client = await start(aiohttp_client, make_config(upstream.url))
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


async def test_readyz_lists_pending_orgs_until_their_first_poll_ends(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    # The first answers are slow, so the app is certainly not ready when first asked.
    upstream.sim.set_fault(ORG_A, Fault(delay=0.6, times=1))
    upstream.sim.set_fault(ORG_B, Fault(delay=0.6, times=1))
    client = await start(aiohttp_client, make_config(upstream.url))
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "waiting"
    assert sorted(o["org_uuid"] for o in body["pending_orgs"]) == sorted([ORG_A, ORG_B])
    assert {o["org"] for o in body["pending_orgs"]} == {"acme", "beta"}

    body = await wait_ready(client)
    assert body == {"status": "ready", "orgs": 2, "pending_orgs": [], "pending_accounts": []}


async def test_readyz_waits_for_discovery_too(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    upstream.sim.set_fault("*", Fault(delay=0.5, times=1))  # the bootstrap call comes first
    config = make_config(upstream.url, [], accounts=[{"name": "me", "token_env": "TOKEN_B"}])
    client = await start(aiohttp_client, config)
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["pending_accounts"] == ["me"]
    body = await wait_ready(client)
    assert body["orgs"] == 1


async def test_a_failed_first_poll_still_counts_as_ready(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=500))
    store = UsageStore()
    client = await start(aiohttp_client, make_config(upstream.url), store=store)
    await wait_ready(client)
    state = store.get(ORG_B)
    assert state is not None
    assert state.last_result is PollResult.SERVER_ERROR


# -- polls and what they leave -----------------------------------------------------------


async def test_a_failing_org_keeps_its_last_good_usage_with_up_0(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    store = UsageStore()
    client = await start(aiohttp_client, make_config(upstream.url), store=store)
    await wait_ready(client)
    _, before = await scrape(client)
    assert org_value(before, "claude_usage_up", ORG_A) == 1.0
    good = store.get(ORG_A)
    assert good is not None
    assert good.snapshot is not None
    kept = good.snapshot

    upstream.sim.set_fault(ORG_A, Fault(status=503))

    async def failed() -> Samples | None:
        _, samples = await scrape(client)
        return samples if org_value(samples, "claude_usage_up", ORG_A) == 0.0 else None

    after: Samples = await until(failed, "org A to fail")
    assert org_value(after, "claude_usage_polls_total", ORG_A, result="server_error") >= 1
    for window in kept.windows:
        if window.utilization is not None:
            value = org_value(after, "claude_usage_utilization_ratio", ORG_A, window=window.name)
            assert value == pytest.approx(window.utilization)
    assert org_value(after, "claude_usage_last_success_timestamp_seconds", ORG_A) == (
        org_value(before, "claude_usage_last_success_timestamp_seconds", ORG_A)
    )
    assert org_value(after, "claude_usage_up", ORG_B) == 1.0


async def test_a_change_upstream_shows_on_the_next_poll(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    client = await start(aiohttp_client, make_config(upstream.url))
    await wait_ready(client)
    upstream.sim.set_utilization(ORG_A, "claude_code", 77.0)

    async def moved() -> bool:
        _, samples = await scrape(client)
        value = org_value(samples, "claude_usage_utilization_ratio", ORG_A, window="claude_code")
        return value is not None and 0.77 <= value < 0.80

    await until(moved, "the new utilization of org A", tries=100, step=0.1)


async def test_a_rate_limited_org_is_not_hammered(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=429, retry_after="0"))
    config = make_config(upstream.url, poll={"interval_seconds": 1, "max_interval_seconds": 2})
    store = UsageStore()
    await start(aiohttp_client, config, store=store)
    # Org A keeps being polled at least every 2 s; wait for three of its polls.
    await until(lambda: len(upstream.sim.requests_for(ORG_A)) >= 3, "3 polls of org A")
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


async def test_a_retry_after_is_honoured(aiohttp_client: MakeClient, upstream: Upstream) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=429, retry_after="120"))
    store = UsageStore()
    await start(aiohttp_client, make_config(upstream.url), store=store)

    def limited_once() -> bool:
        state = store.get(ORG_B)
        return state is not None and state.results[PollResult.RATE_LIMITED] == 1

    await until(limited_once, "org B's first poll")

    state = store.get(ORG_B)
    assert state is not None
    await until(
        lambda: (
            state.next_poll is not None
            and state.last_poll_end is not None
            and state.next_poll > state.last_poll_end
        ),
        "the next poll of org B",
    )
    assert state.next_poll is not None
    assert state.last_poll_end is not None
    assert state.next_poll - state.last_poll_end == pytest.approx(120, abs=1)
    assert len(upstream.sim.requests_for(ORG_B)) == 1


# -- orgs sharing a credential -----------------------------------------------------------


class ConcurrencyProbe:
    """A fake upstream that answers slowly and counts requests in flight per token."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight: dict[str, int] = defaultdict(int)
        self.most: dict[str, int] = defaultdict(int)
        self.total_in_flight = 0
        self.most_total = 0
        self.seen: list[str] = []

    async def usage(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "")
        self.seen.append(request.match_info["org_uuid"])
        self.in_flight[token] += 1
        self.total_in_flight += 1
        self.most[token] = max(self.most[token], self.in_flight[token])
        self.most_total = max(self.most_total, self.total_in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight[token] -= 1
            self.total_in_flight -= 1
        return web.json_response({"five_hour": {"utilization": 1.0, "resets_at": None}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/organizations/{org_uuid}/usage", self.usage)
        return app


SHARED = [
    {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
    {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_A"},
    {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
]


async def test_orgs_sharing_a_credential_are_never_polled_at_once(
    aiohttp_client: MakeClient, aiohttp_server: MakeServer
) -> None:
    probe = ConcurrencyProbe(delay=0.3)
    server = await aiohttp_server(probe.app())
    config = make_config(str(server.make_url("")).rstrip("/"), SHARED)

    states = await poll_every_org_once(config)

    results = {state.target.uuid: state.last_result for state in states}
    assert results == dict.fromkeys([ORG_A, ORG_C, ORG_B], PollResult.SUCCESS)
    assert probe.most[f"Bearer {TOKEN_A}"] == 1
    # different credentials are not serialised behind each other
    assert probe.most_total == 2


async def test_shared_credential_holds_while_the_scheduler_runs(
    aiohttp_client: MakeClient, aiohttp_server: MakeServer
) -> None:
    probe = ConcurrencyProbe(delay=0.4)  # longer than the spread of the first polls
    server = await aiohttp_server(probe.app())
    config = make_config(str(server.make_url("")).rstrip("/"), SHARED)
    await start(aiohttp_client, config)
    await until(lambda: probe.seen.count(ORG_C) >= 2, "two polls of org C", tries=300)
    assert probe.most[f"Bearer {TOKEN_A}"] == 1


# -- discovery ---------------------------------------------------------------------------


async def test_discovery_polls_each_org_once_even_when_also_configured(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    config = make_config(
        upstream.url,
        [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"}],
        accounts=[{"token_env": "TOKEN_A"}],
        poll={"interval_seconds": 60, "max_interval_seconds": 60},
    )
    client = await start(aiohttp_client, config)
    body = await wait_ready(client)
    assert body["orgs"] == 2
    assert len(upstream.sim.requests_for(ORG_A)) == 1
    assert len(upstream.sim.requests_for(ORG_C)) == 1
    _, samples = await scrape(client)
    assert orgs_in(samples) == {ORG_A, ORG_C}
    ups = {k: v for k, v in samples.items() if k[0] == "claude_usage_up"}
    assert len(ups) == 2
    # the configured name wins; the discovered org is named as the upstream names it
    assert ("claude_usage_up", frozenset({("org", "acme"), ("org_uuid", ORG_A)})) in ups
    assert ("claude_usage_up", frozenset({("org", "gamma"), ("org_uuid", ORG_C)})) in ups


async def test_discovery_only_config(aiohttp_client: MakeClient, upstream: Upstream) -> None:
    config = make_config(upstream.url, [], accounts=[{"token_env": "TOKEN_A"}])
    store = UsageStore()
    client = await start(aiohttp_client, config, store=store)
    await wait_ready(client)
    assert sorted(s.target.uuid for s in store) == sorted([ORG_A, ORG_C])


async def test_an_org_that_leaves_discovery_leaves_metrics(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    config = make_config(
        upstream.url,
        [],
        accounts=[{"token_env": "TOKEN_A"}],
        poll={"interval_seconds": 60, "max_interval_seconds": 300},
    )
    client = await driven(config)
    await jobs.run_due()  # discovery, then the first polls of what it found
    _, samples = await scrape(client)
    assert orgs_in(samples) == {ORG_A, ORG_C}

    sim = upstream.sim
    key, account = next((k, a) for k, a in sim.accounts.items() if a.token == TOKEN_A)
    sim.accounts[key] = dataclasses.replace(account, org_uuids=(ORG_A,))
    await jobs.advance(DISCOVERY_INTERVAL_SECONDS)  # the hourly discovery

    text, samples = await scrape(client)
    assert orgs_in(samples) == {ORG_A}
    assert ORG_C not in text


async def test_a_failed_discovery_keeps_the_orgs_it_found(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        upstream.url,
        [],
        accounts=[{"token_env": "TOKEN_A"}],
        poll={"interval_seconds": 60, "max_interval_seconds": 300},
    )
    client = await driven(config)
    await jobs.run_due()
    sim = upstream.sim
    key, account = next((k, a) for k, a in sim.accounts.items() if a.token == TOKEN_A)
    sim.accounts[key] = dataclasses.replace(account, expired=True)  # bootstrap gets 401
    await jobs.advance(DISCOVERY_INTERVAL_SECONDS)
    assert [r.path for r in sim.requests].count("/api/bootstrap") == 2
    assert "discovery failed: account=accounts[0] result=unauthorized" in caplog.text
    _, samples = await scrape(client)
    assert orgs_in(samples) == {ORG_A, ORG_C}


async def test_an_org_removed_from_the_config_vanishes(
    aiohttp_client: MakeClient, upstream: Upstream
) -> None:
    client = await start(aiohttp_client, make_config(upstream.url))
    await wait_ready(client)
    _, samples = await scrape(client)
    assert orgs_in(samples) == {ORG_A, ORG_B}

    assert reload_config(
        client.app, lambda: make_config(upstream.url, [{"uuid": ORG_A, "token_env": "TOKEN_A"}])
    )

    text, samples = await scrape(client)
    assert orgs_in(samples) == {ORG_A}
    assert ORG_B not in text
    # and it is no longer polled
    polls_of_b = len(upstream.sim.requests_for(ORG_B))
    polls_of_a = len(upstream.sim.requests_for(ORG_A))
    await until(
        lambda: len(upstream.sim.requests_for(ORG_A)) >= polls_of_a + 2,
        "two more polls of org A",
        tries=200,
    )
    assert len(upstream.sim.requests_for(ORG_B)) == polls_of_b


# -- secrets, shutdown, logs ---------------------------------------------------------------


async def test_no_credential_in_logs_or_metrics(
    aiohttp_client: MakeClient, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = f'{{"error": {{"message": "token {TOKEN_A} has expired"}}}}'
    upstream.sim.set_fault(ORG_A, Fault(status=401, body=echo))
    config = make_config(upstream.url, accounts=[{"token_env": "TOKEN_C"}])
    client = await start(aiohttp_client, config)
    await wait_ready(client)
    text, _ = await scrape(client)
    await client.close()
    logged = "\n".join([r.getMessage() for r in caplog.records] + [caplog.text])
    assert "poll failed" in logged
    for secret in ALL_TEST_SECRETS:
        assert secret not in logged
        assert secret not in text


async def test_the_scheduler_stops_with_the_app(
    aiohttp_client: MakeClient, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    # Close while a poll and a discovery are both in flight.
    upstream.sim.set_fault("*", Fault(delay=1.0))
    config = make_config(upstream.url, accounts=[{"token_env": "TOKEN_C"}])
    jobs = APSchedulerJobs()
    client = await start(aiohttp_client, config, jobs=jobs)
    await until(lambda: len(upstream.sim.requests) >= 2, "requests in flight")
    assert jobs.started
    await client.close()

    assert not jobs.started
    for _ in range(3):
        await asyncio.sleep(0)
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
    upstream: Upstream, caplog: pytest.LogCaptureFixture, make_parts: MakeParts
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.poller")
    clock = FakeClock()
    poller = (await make_parts(make_config(upstream.url), clock=clock)).poller
    poller.apply_targets()

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "monitor.poller"]

    upstream.sim.set_fault(ORG_A, Fault(status=500))
    for _ in range(5):
        assert await poller.poll(ORG_A) is PollResult.SERVER_ERROR
        clock.now += 60
    failures = [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.WARNING
    assert "org=acme" in failures[0].getMessage()
    assert "server_error" in failures[0].getMessage()
    assert "\n" not in failures[0].getMessage()

    clock.now += REMINDER_SECONDS  # ten minutes later: a reminder
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
    aiohttp_client: MakeClient, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.poller")
    upstream.sim.set_fault(ORG_B, Fault(status=500))
    store = UsageStore()
    await start(aiohttp_client, make_config(upstream.url), store=store)

    def failed_twice() -> bool:
        state = store.get(ORG_B)
        return state is not None and state.results[PollResult.SERVER_ERROR] >= 2

    await until(failed_twice, "two failed polls of org B", tries=300)
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

    parts.upstream.fetch_usage = broken_once  # type: ignore[method-assign]
    assert await poller.poll(ORG_A) is PollResult.INVALID_RESPONSE
    state = parts.store.get(ORG_A)
    assert state is not None
    assert "unexpected RuntimeError" in (state.last_error or "")
    assert "unexpected error polling org=acme" in caplog.text
    assert await poller.poll(ORG_A) is PollResult.SUCCESS
