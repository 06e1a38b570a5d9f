"""What a daemon running for weeks meets: a discovery that breaks, a payload with more
windows than any label set should hold."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from monitor.app import Parts
from monitor.credentials import LiveCredential
from monitor.state import PollResult
from monitor.upstream import DiscoveredOrg
from tests.conftest import MakeClient, MakeServer
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.metrics import parse_metrics, value
from tests.support.upstream import ORG_A, Upstream

MakeParts = Callable[..., Awaitable[Parts]]


async def test_a_discovery_that_raises_is_counted_logged_and_tried_again(
    make_parts: MakeParts, upstream: Upstream, jobs: ManualJobs, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(upstream.url, [], accounts=[{"name": "team", "token_env": "TOKEN_A"}])
    parts = await make_parts(config, clock=jobs.clock, jobs=jobs)
    real = parts.upstream.fetch_bootstrap
    calls = 0

    async def broken_once(url: str, credential: LiveCredential) -> list[DiscoveredOrg]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in discovery")
        return await real(url, credential)

    parts.upstream.fetch_bootstrap = broken_once  # type: ignore[method-assign]  # a bug, injected
    jobs.start()
    parts.poller.start()
    parts.discovery.start()
    await jobs.run_due()
    account = parts.discovery.accounts[0]
    assert account.results[PollResult.INVALID_RESPONSE] == 1
    assert "unexpected error in discovery for account=team" in caplog.text
    assert "discovery failed: account=team result=invalid_response" in caplog.text
    # The next attempt is scheduled (after the poll interval, not the hour).
    assert jobs.when("discover:0") == pytest.approx(jobs.clock() + 1.0)
    await jobs.advance(1.0)
    assert calls == 2
    assert account.results[PollResult.SUCCESS] == 1
    assert ORG_A in parts.store
    assert "discovery recovered: account=team" in caplog.text


async def test_thousands_of_windows_are_bounded_and_logged_once(
    aiohttp_server: MakeServer,
    driven: MakeClient,
    jobs: ManualJobs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = {f"codename_{i}": {"utilization": 1.0, "resets_at": None} for i in range(3000)}

    async def usage(_request: web.Request) -> web.Response:
        return web.json_response(payload)

    app = web.Application()
    app.router.add_get("/api/organizations/{org_uuid}/usage", usage)
    server = await aiohttp_server(app)
    config = make_config(str(server.make_url("")).rstrip("/"), poll={"max_windows_per_org": 10})
    client = await driven(config)
    for _ in range(3):
        await jobs.advance(1.0)
    samples = parse_metrics(await (await client.get("/metrics")).text())
    assert len(samples["claude_usage_utilization_ratio"]) == 2 * 10  # orgs A and B
    assert value(samples, "claude_usage_windows_dropped", org="acme") == 2990
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "max_windows_per_org" in r.getMessage()
    ]
    assert len(warnings) == 2  # once per org, not once per poll
    assert "has 3000 windows; kept 10" in warnings[0]
