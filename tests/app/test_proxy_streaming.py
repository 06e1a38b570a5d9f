"""The proxy served the way `monitor run` serves it: answers stream before the upstream is
done, a caller hanging up cancels the upstream request, and no credential reaches a log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.access_log import ProxyAccessLogger
from monitor.app import create_app
from monitor.simulator import Fault
from tests.conftest import MakeServer
from tests.support.config import make_config
from tests.support.net import free_port
from tests.support.upstream import (
    AUTH_A,
    ORG_A,
    ORG_B,
    ORG_C,
    TOKEN_B,
    Upstream,
    base_url,
)


@asynccontextmanager
async def production_server(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` the way `monitor run` does: an AppRunner that cancels the handler of a
    caller who went away, with the access logger `monitor run` uses."""
    runner = web.AppRunner(app, access_log_class=ProxyAccessLogger, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def slow_upstream(
    aiohttp_server: MakeServer,
) -> tuple[TestServer, dict[str, asyncio.Event]]:
    """A fake upstream that streams forever (`/api/organizations/<uuid>/usage`) or never
    answers (`/api/account`); `gone` is set when its connection to the proxy goes."""
    events = {name: asyncio.Event() for name in ("started", "gone", "release")}

    async def streams(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(request)
            await response.write(b"[" + b'"first",' * 8)
            events["started"].set()
            await events["release"].wait()
            await response.write(b'"second"]')
            while True:
                await asyncio.sleep(0.05)
                await response.write(b" ")
        except (asyncio.CancelledError, ConnectionResetError):
            events["gone"].set()
            raise

    async def silent(_request: web.Request) -> web.StreamResponse:
        events["started"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events["gone"].set()
            raise
        return web.Response()

    app = web.Application()
    app.router.add_get("/api/organizations/{org_uuid}/usage", streams)
    app.router.add_get("/api/account", silent)
    return await aiohttp_server(app), events


async def test_answers_stream_before_the_upstream_finishes(
    slow_upstream: tuple[TestServer, dict[str, asyncio.Event]],
) -> None:
    server, events = slow_upstream
    app = create_app(make_config(base_url(server)), poll=False)
    async with (
        production_server(app) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/organizations/{ORG_A}/usage", headers=AUTH_A) as response,
    ):
        assert response.status == 200
        first = await response.content.readexactly(len(b"[" + b'"first",' * 8))
        assert first.startswith(b'["first",')
        # The upstream has not finished (it waits for `release`), yet its bytes arrived.
        assert not events["release"].is_set()
        events["release"].set()
        assert (await response.content.readexactly(9)) == b'"second"]'


async def test_caller_hanging_up_mid_answer_cancels_the_upstream_request(
    slow_upstream: tuple[TestServer, dict[str, asyncio.Event]],
) -> None:
    server, events = slow_upstream
    app = create_app(make_config(base_url(server)), poll=False)
    async with production_server(app) as url:
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{url}/api/organizations/{ORG_A}/usage", headers=AUTH_A)
            await response.content.readany()
            events["release"].set()
            response.close()  # hang up mid-answer
        await asyncio.wait_for(events["gone"].wait(), timeout=10)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as metrics:
            text = await metrics.text()
    # The status line had gone out, so the request counts with the status sent.
    assert 'claude_proxy_requests_total{code="200",endpoint="usage",method="GET"} 1.0' in text


async def test_caller_hanging_up_before_the_answer_cancels_the_upstream_request(
    slow_upstream: tuple[TestServer, dict[str, asyncio.Event]],
) -> None:
    server, events = slow_upstream
    # A timeout far beyond the wait below: only the hang-up can end the upstream request.
    config = make_config(base_url(server), upstream={"timeout_seconds": 300})
    app = create_app(config, poll=False)
    async with production_server(app) as url:
        async with aiohttp.ClientSession() as session:
            pending = asyncio.ensure_future(session.get(f"{url}/api/account", headers=AUTH_A))
            await asyncio.wait_for(events["started"].wait(), timeout=10)
            pending.cancel()  # hang up while the upstream is still thinking
            with pytest.raises(asyncio.CancelledError):
                await pending
        await asyncio.wait_for(events["gone"].wait(), timeout=10)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as metrics:
            text = await metrics.text()
    assert 'claude_proxy_requests_total{code="499",endpoint="account",method="GET"} 1.0' in text


async def test_credentials_never_reach_the_logs(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "secret-4f1d9a7c-never-log-me"
    upstream.sim.add_account(token=secret, org_uuids=[ORG_A])
    upstream.sim.add_account(session_key=secret, org_uuids=[ORG_A])
    headers = {"Authorization": f"Bearer {secret}", "Cookie": f"sessionKey={secret}"}
    closed = free_port()
    orgs = [
        {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
        {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
        {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_A"},
    ]
    orgs[1]["base_url"] = f"http://127.0.0.1:{closed}"
    upstream.sim.set_fault(ORG_C, Fault(truncate=True))
    app = create_app(make_config(upstream.url, orgs), poll=False)
    with caplog.at_level(logging.DEBUG):
        async with production_server(app) as url, aiohttp.ClientSession() as session:
            for path in (
                f"/api/organizations/{ORG_A}/usage",  # relayed, passive refresh
                f"/api/organizations/{ORG_B}/usage",  # 502
                f"/api/organizations/{ORG_C}/usage",  # truncated mid-answer
                f"/api/organizations/{ORG_A}/memory",  # refused locally
                "/api/account",
            ):
                async with session.get(url + path, headers=headers) as response:
                    with suppress(aiohttp.ClientPayloadError):
                        await response.read()
    assert any(r.name == "aiohttp.access" for r in caplog.records)
    assert any(r.name == "monitor.proxy" for r in caplog.records)
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(record.args)
    assert secret not in caplog.text
    assert TOKEN_B not in caplog.text
