"""Back-pressure: `[upstream] max_connections` bounds upstream connections, and a proxied
request that cannot get one within `[upstream] pool_wait_seconds` is answered 503 at once."""

from __future__ import annotations

import asyncio
import json
import resource
import tracemalloc
from collections.abc import Iterator

import aiohttp
import pytest

from monitor.app import create_app
from tests.conftest import MakeProxy, MakeServer
from tests.support.config import make_config
from tests.support.fakes import SlowUpstream
from tests.support.upstream import AUTH_A, ORG_A, base_url
from tests.support.waiting import until

BURST = 1000
UPSTREAM_DELAY = 0.5
POOL_WAIT = 0.3


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
    async with session.get(url, headers=AUTH_A) as response:
        return response.status, json.loads(await response.read())


@pytest.fixture
async def slow_upstream(aiohttp_server: MakeServer) -> tuple[SlowUpstream, str]:
    """An upstream that answers every request after UPSTREAM_DELAY, and its URL."""
    upstream = SlowUpstream(delay=UPSTREAM_DELAY)
    return upstream, base_url(await aiohttp_server(upstream.app()))


@pytest.mark.usefixtures("many_fds")
async def test_a_thousand_concurrent_requests_are_all_answered_200_or_503(
    aiohttp_server: MakeServer, slow_upstream: tuple[SlowUpstream, str]
) -> None:
    slow, upstream_url = slow_upstream
    config = make_config(
        upstream_url,
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
    slow_upstream: tuple[SlowUpstream, str], make_proxy: MakeProxy
) -> None:
    slow, upstream_url = slow_upstream
    config = make_config(
        upstream_url,
        upstream={"max_connections": 1, "pool_wait_seconds": 0.1},
    )
    client = await make_proxy(config)
    path = f"/api/organizations/{ORG_A}/usage"
    headers = AUTH_A
    first = asyncio.ensure_future(client.get(path, headers=headers))
    await until(lambda: slow.in_flight, "the first request to reach the upstream")
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
