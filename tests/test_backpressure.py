"""Back-pressure: `[upstream] max_connections` bounds upstream connections, and a proxied
request that cannot get one within `[upstream] pool_wait_seconds` is answered 503 at once."""

from __future__ import annotations

import asyncio
import json
import resource
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.app import create_app
from monitor.schema import proxy_connection_share
from tests.support.upstream import ORG_A, TOKEN_A, make_config

BURST = 1000
UPSTREAM_DELAY = 0.5
POOL_WAIT = 0.3


@dataclass
class SlowUpstream:
    """Answers every request after `UPSTREAM_DELAY`, counting requests in flight (each
    holds one of monitor's upstream connections while it is)."""

    in_flight: int = 0
    max_in_flight: int = 0
    served: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(UPSTREAM_DELAY)
        finally:
            self.in_flight -= 1
        self.served += 1
        return web.json_response({"five_hour": {"utilization": 12.0, "resets_at": None}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def test_proxy_share_leaves_polls_their_concurrency() -> None:
    assert proxy_connection_share(100, 16) == 84  # the defaults: disjoint budgets
    assert proxy_connection_share(100, 100) == 50  # polls never take more than half
    assert proxy_connection_share(2, 16) == 1
    assert proxy_connection_share(1, 16) == 1  # the proxy always keeps one
    for limit in range(1, 40):
        for concurrency in range(1, 40):
            share = proxy_connection_share(limit, concurrency)
            assert 1 <= share <= limit
            if concurrency <= limit // 2:
                assert share + concurrency <= limit


def test_config_warns_when_polls_may_take_the_proxys_connections() -> None:
    from monitor.config import parse_config

    quiet: list[str] = []
    parse_config(
        {"upstream": {"max_connections": 100}, "poll": {"concurrency": 50}}, warnings=quiet
    )
    assert quiet == []
    loud: list[str] = []
    parse_config({"upstream": {"max_connections": 10}, "poll": {"concurrency": 6}}, warnings=loud)
    assert len(loud) == 1 and "poll.concurrency (6)" in loud[0] and "max_connections" in loud[0]


@pytest.fixture
def many_fds() -> Iterator[None]:
    """A thousand client sockets plus the server's side of each need more than 1024 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * BURST + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _fire(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with session.get(url, headers={"Authorization": f"Bearer {TOKEN_A}"}) as response:
        return response.status, json.loads(await response.read())


async def test_a_thousand_concurrent_requests_are_all_answered_200_or_503(
    aiohttp_server: Callable[..., Awaitable[TestServer]], many_fds: None
) -> None:
    slow = SlowUpstream()
    upstream = await aiohttp_server(slow.app())
    config = make_config(
        str(upstream.make_url("")).rstrip("/"),
        upstream={"max_connections": 2, "pool_wait_seconds": POOL_WAIT, "timeout_seconds": 5},
        poll={"concurrency": 1},  # polls of orgs A and B share the same slow upstream
    )
    server = await aiohttp_server(create_app(config))
    url = str(server.make_url(f"/api/organizations/{ORG_A}/usage"))

    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            answers = await asyncio.wait_for(
                asyncio.gather(*(_fire(session, url) for _ in range(BURST))), timeout=90
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    statuses = [status for status, _ in answers]
    counts = {code: statuses.count(code) for code in set(statuses)}
    print(f"\nbackpressure: {counts}, upstream max in flight {slow.max_in_flight}, "
          f"traced peak {(peak - before) / 2**20:.1f} MiB")  # fmt: skip
    assert set(counts) <= {200, 503}, counts
    assert counts.get(200, 0) >= 1 and counts.get(503, 0) >= 1
    # The proxy's share (1) plus the one poll in flight: never more than max_connections.
    assert slow.max_in_flight <= 2
    for status, body in answers:
        if status == 503:
            error = body["error"]
            assert isinstance(error, dict) and error["type"] == "upstream_busy"
            assert "max_connections" in error["message"] and "retry" in error["message"]
    # Queued requests hold no buffers worth speaking of: well under 64 KiB per request
    # (both ends of every connection live in this process).
    assert peak - before < BURST * 64 * 1024


async def test_busy_answer_is_counted_and_has_retry_after(
    aiohttp_server: Callable[..., Awaitable[TestServer]], aiohttp_client: object
) -> None:
    slow = SlowUpstream()
    upstream = await aiohttp_server(slow.app())
    config = make_config(
        str(upstream.make_url("")).rstrip("/"),
        upstream={"max_connections": 1, "pool_wait_seconds": 0.1},
    )
    client = await aiohttp_client(create_app(config, poll=False))  # type: ignore[operator]
    path = f"/api/organizations/{ORG_A}/usage"
    headers = {"Authorization": f"Bearer {TOKEN_A}"}
    first = asyncio.ensure_future(client.get(path, headers=headers))
    for _ in range(200):
        if slow.in_flight:
            break
        await asyncio.sleep(0.01)
    assert slow.in_flight == 1
    busy = await client.get(path, headers=headers)
    assert busy.status == 503
    assert busy.headers["Retry-After"] == "1"
    assert busy.content_type == "application/json"
    assert (await busy.json())["error"]["type"] == "upstream_busy"
    ok = await first
    assert ok.status == 200
    ok.release()
    assert slow.served == 1  # the refused request never reached the upstream
    metrics = await (await client.get("/metrics")).text()
    assert 'claude_proxy_requests_total{code="503",endpoint="usage",method="GET"} 1.0' in metrics
