"""The coalescing usage cache (`[proxy] usage_cache_seconds`) over real HTTP: hits and
misses, byte-for-byte answers, single flight, no sharing across credentials, the TTL on
an injected clock, the bounds, the bypass and the metric."""

from __future__ import annotations

import asyncio

from aiohttp import web
from multidict import MultiMapping

from monitor.simulator import Fault, simulator_app
from monitor.usage_cache import UsageCache
from tests.conftest import Client, MakeClient, MakeServer
from tests.support.clock import FakeClock
from tests.support.config import make_config
from tests.support.metrics import metric_lines, scrape, value
from tests.support.tools import promtool_check_metrics
from tests.support.upstream import (
    ORG_A,
    ORG_C,
    TOKEN_A,
    TOKEN_B,
    TOKEN_C,
    Upstream,
    standard_simulator,
)
from tests.support.waiting import until

TTL = 30.0
OAUTH = "/api/oauth/usage"
CACHE = "claude_proxy_cache_requests_total"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "anthropic-beta": "oauth-2025-04-20"}


async def frozen_upstream(make_server: MakeServer) -> Upstream:
    sim = standard_simulator()
    now = sim.clock()
    sim.clock = lambda: now
    return Upstream(sim, await make_server(simulator_app(sim)))


async def caching_client(
    make_client: MakeClient,
    upstream_url: str,
    clock: FakeClock,
    cache: UsageCache | None = None,
    **proxy: float,
) -> Client:
    """The app with its usage cache on; `cache`, if given, is the one it uses."""
    config = make_config(upstream_url, proxy={"usage_cache_seconds": TTL, **proxy})
    return await make_client(config, poll=False, clock=clock, cache=cache)


def usage_cache(clock: FakeClock, **proxy: float) -> UsageCache:
    """A cache with these `[proxy]` settings, to hand to the app and look into."""
    settings = make_config("http://127.0.0.1:9", proxy={"usage_cache_seconds": TTL, **proxy})
    return UsageCache(lambda: settings.proxy, clock)


def without(headers: MultiMapping[str], *names: str) -> list[tuple[str, str]]:
    dropped = {name.lower() for name in names}
    return [(k, v) for k, v in headers.items() if k.lower() not in dropped]


async def read(client: Client, path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    async with client.get(path, headers=headers, auto_decompress=False) as response:
        return response.status, await response.read(), response.headers.get("X-Cache", "")


async def test_a_second_identical_read_is_the_first_answer_byte_for_byte(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    client = await caching_client(make_client, upstream.url, clock)
    for path in (OAUTH, f"/api/organizations/{ORG_C}/usage"):
        headers = {**bearer(TOKEN_C), "Accept-Encoding": "gzip"}
        async with client.get(path, headers=headers, auto_decompress=False) as first:
            first_body, first_headers = await first.read(), first.headers.copy()
        clock.advance(12.4)
        async with client.get(path, headers=headers, auto_decompress=False) as second:
            second_body, second_headers = await second.read(), second.headers.copy()
        assert first.status == second.status == 200
        assert first_headers["X-Cache"] == "MISS" and "Age" not in first_headers
        assert second_headers["X-Cache"] == "HIT" and second_headers["Age"] == "12"
        assert first_headers["Content-Encoding"] == "gzip"
        assert second_body == first_body
        assert without(second_headers, "X-Cache", "Age") == without(first_headers, "X-Cache")
    assert len(upstream.sim.requests) == 2  # one per route
    _, samples = await scrape(client)
    for endpoint in ("oauth_usage", "usage"):
        assert value(samples, CACHE, endpoint=endpoint, result="miss") == 1
        assert value(samples, CACHE, endpoint=endpoint, result="hit") == 1


async def test_fifty_identical_reads_at_once_make_exactly_one_upstream_call(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    calls = 0
    gate = asyncio.Event()

    async def usage(_request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        await gate.wait()  # held until every other read is waiting for this one
        return web.json_response({"five_hour": {"utilization": 42.0, "resets_at": None}})

    app = web.Application()
    app.router.add_get(OAUTH, usage)
    server = await aiohttp_server(app)
    cache = usage_cache(clock)
    client = await caching_client(make_client, str(server.make_url("")).rstrip("/"), clock, cache)
    reads = [asyncio.create_task(read(client, OAUTH, bearer(TOKEN_C))) for _ in range(50)]
    await until(lambda: calls == 1 and cache.waiting() == 49, "49 reads waiting for the first")
    gate.set()
    answers = await asyncio.gather(*reads)
    assert calls == 1
    assert {(status, body) for status, body, _ in answers} == {
        (200, b'{"five_hour": {"utilization": 42.0, "resets_at": null}}')
    }
    assert sorted(state for _, _, state in answers) == ["HIT"] * 49 + ["MISS"]
    _, samples = await scrape(client)
    assert value(samples, CACHE, endpoint="oauth_usage", result="miss") == 1
    assert value(samples, CACHE, endpoint="oauth_usage", result="hit") == 49


async def test_two_credentials_never_share_an_entry(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    upstream.sim.add_account(session_key="sk-ant-sid01-cache-test", org_uuids=[ORG_C])
    client = await caching_client(make_client, upstream.url, clock)
    callers = [bearer(TOKEN_A), bearer(TOKEN_C), {"Cookie": "sessionKey=sk-ant-sid01-cache-test"}]
    first = [await read(client, OAUTH, headers) for headers in callers]
    again = [await read(client, OAUTH, headers) for headers in callers]
    assert [state for _, _, state in first] == ["MISS"] * 3
    assert [state for _, _, state in again] == ["HIT"] * 3
    assert first[0][1] != first[1][1]  # token A acts for org A, token C for org C
    assert [body for _, body, _ in again] == [body for _, body, _ in first]
    assert len(upstream.sim.requests) == 3
    assert [r.org_uuid for r in upstream.sim.requests] == [ORG_A, ORG_C, ORG_C]


async def test_an_entry_lives_exactly_the_ttl_on_the_apps_clock(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    client = await caching_client(make_client, upstream.url, clock)
    assert (await read(client, OAUTH, bearer(TOKEN_C)))[2] == "MISS"
    clock.advance(TTL - 0.1)
    assert (await read(client, OAUTH, bearer(TOKEN_C)))[2] == "HIT"
    clock.advance(0.1)
    assert (await read(client, OAUTH, bearer(TOKEN_C)))[2] == "MISS"
    assert len(upstream.sim.requests) == 2


async def test_three_clients_on_one_token_make_one_upstream_call_every_30_s(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    """The README's worked example: a meter, a widget and a script each read every 30 s,
    10 s apart; with `usage_cache_seconds = 30` the upstream sees one read per 30 s."""
    upstream = await frozen_upstream(aiohttp_server)
    client = await caching_client(make_client, upstream.url, clock)
    start = clock()
    seen = []
    for second in range(0, 180, 10):  # 3 minutes, one of the three clients every 10 s
        clock.now = start + second
        async with client.get(OAUTH, headers=bearer(TOKEN_C)) as response:
            assert response.status == 200
            seen.append((response.headers["X-Cache"], response.headers.get("Age")))
    assert len(upstream.sim.requests) == 6
    assert seen == [("MISS", None), ("HIT", "10"), ("HIT", "20")] * 6


async def test_the_bounds_evict_the_least_recently_used(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    cache = usage_cache(clock, usage_cache_max_entries=2)
    client = await caching_client(
        make_client, upstream.url, clock, cache, usage_cache_max_entries=2
    )
    for token in (TOKEN_A, TOKEN_B, TOKEN_C):
        assert (await read(client, OAUTH, bearer(token)))[2] == "MISS"
    assert len(cache) == 2
    assert (await read(client, OAUTH, bearer(TOKEN_C)))[2] == "HIT"
    assert (await read(client, OAUTH, bearer(TOKEN_A)))[2] == "MISS"  # evicted first
    assert len(upstream.sim.requests) == 4


async def test_no_cache_goes_upstream_and_refreshes_the_entry(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    client = await caching_client(make_client, upstream.url, clock)
    await read(client, OAUTH, bearer(TOKEN_C))
    clock.advance(20)
    fresh = await read(client, OAUTH, {**bearer(TOKEN_C), "Cache-Control": "no-cache"})
    assert fresh[0] == 200 and fresh[2] == "MISS"
    clock.advance(20)  # 40 s after the first answer, 20 s after the bypass
    async with client.get(OAUTH, headers=bearer(TOKEN_C)) as hit:
        assert hit.headers["X-Cache"] == "HIT" and hit.headers["Age"] == "20"
    assert len(upstream.sim.requests) == 2
    _, samples = await scrape(client)
    assert value(samples, CACHE, endpoint="oauth_usage", result="bypass") == 1


async def test_only_200s_are_kept(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    client = await caching_client(make_client, upstream.url, clock)
    upstream.sim.set_fault(ORG_C, Fault(status=500, times=1))
    assert (await read(client, OAUTH, bearer(TOKEN_C)))[:1] == (500,)
    assert (await read(client, OAUTH, bearer(TOKEN_C)))[::2] == (200, "MISS")
    assert (await read(client, OAUTH, bearer(TOKEN_C)))[::2] == (200, "HIT")
    assert len(upstream.sim.requests) == 2


async def test_off_by_default_every_read_goes_upstream(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    client = await make_client(make_config(upstream.url), poll=False, clock=clock)
    for _ in range(3):
        async with client.get(OAUTH, headers=bearer(TOKEN_C)) as response:
            assert response.status == 200 and "X-Cache" not in response.headers
    assert len(upstream.sim.requests) == 3
    text, _ = await scrape(client)
    assert metric_lines(text, CACHE) == []


async def test_the_exposition_with_cache_counts_passes_promtool(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await frozen_upstream(aiohttp_server)
    client = await caching_client(make_client, upstream.url, clock)
    await read(client, OAUTH, bearer(TOKEN_C))
    await read(client, OAUTH, bearer(TOKEN_C))
    text, _ = await scrape(client)
    assert len(metric_lines(text, CACHE)) == 2
    checked = await promtool_check_metrics(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
