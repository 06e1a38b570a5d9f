"""Rate-limit shielding (`[proxy] shield_rate_limits`) over real HTTP, time on the test's
clock: after a 429 for a credential, its usage reads are answered from memory and reach
no upstream until the back-off ends, and the poller and the proxy share what they saw."""

from __future__ import annotations

from monitor.schema import Config
from monitor.simulator import Fault, simulator_app
from tests.conftest import MakeClient, MakeServer
from tests.support.clock import FakeClock
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.metrics import scrape, value
from tests.support.upstream import ORG_A, ORG_C, TOKEN_A, TOKEN_C, Upstream, standard_simulator

OAUTH = "/api/oauth/usage"
ORG_USAGE = f"/api/organizations/{ORG_C}/usage"
CACHE = "claude_proxy_cache_requests_total"
POLL = {"interval_seconds": 60, "max_interval_seconds": 300}
AUTH_C = {"Authorization": f"Bearer {TOKEN_C}"}
# The shortest and longest hold after a `Retry-After: 0` (the poller's jittered back-off).
SHORTEST, LONGEST = 0.8 * 300, 300.0


async def simulated(make_server: MakeServer) -> Upstream:
    sim = standard_simulator()
    return Upstream(sim, await make_server(simulator_app(sim)))


def shielding(upstream: Upstream, orgs: list[dict[str, str]] | None = None) -> Config:
    return make_config(upstream.url, orgs or [], poll=POLL, proxy={"shield_rate_limits": True})


def reads_of(upstream: Upstream, org_uuid: str) -> int:
    return len(upstream.sim.requests_for(org_uuid))


async def test_after_a_429_usage_reads_with_that_credential_reach_no_upstream(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await simulated(aiohttp_server)
    client = await make_client(shielding(upstream), poll=False, clock=clock)
    upstream.sim.set_fault(ORG_C, Fault(status=429, retry_after="0", times=1))
    async with client.get(OAUTH, headers=AUTH_C) as first:
        limited = (first.status, first.headers["Retry-After"], await first.read())
        assert "X-Monitor-Shielded" not in first.headers
    assert limited[0] == 429 and reads_of(upstream, ORG_C) == 1
    clock.advance(SHORTEST - 1)
    for path in (OAUTH, ORG_USAGE, OAUTH):  # both usage routes, the same credential
        async with client.get(path, headers=AUTH_C) as shielded:
            again = (shielded.status, shielded.headers["Retry-After"], await shielded.read())
            assert shielded.headers["X-Monitor-Shielded"] == "1"
        assert again == limited
    assert reads_of(upstream, ORG_C) == 1  # nothing reached the upstream meanwhile
    other = await client.get(OAUTH, headers={"Authorization": f"Bearer {TOKEN_A}"})
    assert other.status == 200 and reads_of(upstream, ORG_A) == 1  # other tokens go through
    profile = await client.get("/api/oauth/profile", headers=AUTH_C)
    assert profile.status == 200  # only usage reads are shielded
    clock.advance(LONGEST - SHORTEST + 1)
    released = await client.get(OAUTH, headers=AUTH_C)
    assert released.status == 200 and "X-Monitor-Shielded" not in released.headers


async def test_a_positive_retry_after_is_the_hold(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await simulated(aiohttp_server)
    client = await make_client(shielding(upstream), poll=False, clock=clock)
    upstream.sim.set_fault(ORG_C, Fault(status=429, retry_after="120", times=1))
    assert (await client.get(ORG_USAGE, headers=AUTH_C)).status == 429
    clock.advance(119.5)
    held = await client.get(OAUTH, headers=AUTH_C)
    assert held.status == 429 and held.headers["Retry-After"] == "120"
    assert reads_of(upstream, ORG_C) == 1
    clock.advance(0.5)
    assert (await client.get(OAUTH, headers=AUTH_C)).status == 200
    assert reads_of(upstream, ORG_C) == 2


async def test_off_every_read_goes_upstream_after_a_429(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await simulated(aiohttp_server)
    config = make_config(upstream.url, [], poll=POLL)
    client = await make_client(config, poll=False, clock=clock)
    upstream.sim.set_fault(ORG_C, Fault(status=429, retry_after="0", times=1))
    assert (await client.get(OAUTH, headers=AUTH_C)).status == 429
    assert (await client.get(OAUTH, headers=AUTH_C)).status == 200
    assert reads_of(upstream, ORG_C) == 2


async def test_a_429_the_proxy_saw_slows_the_poller(
    aiohttp_server: MakeServer,
    driven: MakeClient,
    clock: FakeClock,
    jobs: ManualJobs,
) -> None:
    upstream = await simulated(aiohttp_server)
    orgs = [{"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_C"}]
    client = await driven(shielding(upstream, orgs))
    await jobs.run_due()  # the first poll
    assert reads_of(upstream, ORG_C) == 1
    upstream.sim.set_fault(ORG_C, Fault(status=429, retry_after="0", times=1))
    assert (await client.get(OAUTH, headers=AUTH_C)).status == 429  # the proxy's, not a poll
    assert reads_of(upstream, ORG_C) == 2
    await jobs.advance(SHORTEST - 1)  # the poll due at +60 s waits for the hold instead
    assert reads_of(upstream, ORG_C) == 2
    assert jobs.when(f"poll:{ORG_C}") >= clock() + 1
    await jobs.advance(LONGEST - SHORTEST + 2)
    assert reads_of(upstream, ORG_C) == 3  # polled once the hold ended, and it succeeded
    assert (await client.get(OAUTH, headers=AUTH_C)).status == 200


async def test_a_429_the_poller_saw_shields_the_proxy(
    aiohttp_server: MakeServer,
    driven: MakeClient,
    clock: FakeClock,
    jobs: ManualJobs,
) -> None:
    upstream = await simulated(aiohttp_server)
    orgs = [{"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_C"}]
    upstream.sim.set_fault(ORG_C, Fault(status=429, retry_after="0", times=1))
    client = await driven(shielding(upstream, orgs))
    await jobs.run_due()  # the first poll is limited
    assert reads_of(upstream, ORG_C) == 1
    wait = jobs.when(f"poll:{ORG_C}") - clock()
    assert SHORTEST <= wait <= LONGEST
    async with client.get(OAUTH, headers=AUTH_C) as shielded:
        assert shielded.status == 429 and shielded.headers["X-Monitor-Shielded"] == "1"
        assert int(shielded.headers["Retry-After"]) == int(-(-wait // 1))
        body = await shielded.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert reads_of(upstream, ORG_C) == 1
    await jobs.advance(wait)  # the poller's next poll succeeds and releases the token
    assert reads_of(upstream, ORG_C) == 2
    assert (await client.get(OAUTH, headers=AUTH_C)).status == 200


async def test_with_the_cache_on_a_fresh_entry_still_answers_and_shielded_reads_are_no_misses(
    aiohttp_server: MakeServer, make_client: MakeClient, clock: FakeClock
) -> None:
    upstream = await simulated(aiohttp_server)
    config = make_config(
        upstream.url,
        [],
        poll=POLL,
        proxy={"shield_rate_limits": True, "usage_cache_seconds": 30},
    )
    client = await make_client(config, poll=False, clock=clock)
    assert (await client.get(OAUTH, headers=AUTH_C)).headers["X-Cache"] == "MISS"
    upstream.sim.set_fault(ORG_C, Fault(status=429, retry_after="0", times=1))
    fresh = await client.get(OAUTH, headers={**AUTH_C, "Cache-Control": "no-cache"})
    assert fresh.status == 429  # the upstream's, relayed: the shield now holds token C
    clock.advance(10)
    kept = await client.get(OAUTH, headers=AUTH_C)
    assert kept.status == 200 and kept.headers["X-Cache"] == "HIT"  # costs the upstream nothing
    clock.advance(21)  # the entry is stale, the hold still on
    shielded = await client.get(OAUTH, headers=AUTH_C)
    assert shielded.status == 429 and shielded.headers["X-Monitor-Shielded"] == "1"
    assert "X-Cache" not in shielded.headers
    assert reads_of(upstream, ORG_C) == 2
    _, samples = await scrape(client)
    counts = {
        result: value(samples, CACHE, endpoint="oauth_usage", result=result)
        for result in ("hit", "miss", "bypass")
    }
    assert counts == {"hit": 1, "miss": 1, "bypass": 1}
