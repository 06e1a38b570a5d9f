"""The simulator over real HTTP: faults, the control routes, the request log, the demo."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from monitor.simulator import CLOUDFLARE_HTML, Fault, Simulator, demo_simulator, simulator_app
from tests.conftest import Client, MakeClient
from tests.support.clock import FakeClock
from tests.support.paths import FIXTURES
from tests.support.simulator import (
    ACME,
    BEARER,
    GLOBEX,
    INITECH,
    NOBODY,
    T0,
    TOKEN,
    fixture,
    get_json,
    parse_ts,
)

# Faults over HTTP


async def test_fault_status_with_retry_after(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=429, retry_after="0"))
    async with sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "0"
        assert (await response.json())["error"]["type"] == "rate_limit_error"
    sim.set_fault(ACME, Fault(status=503, body="upstream sad", content_type="text/plain"))
    async with sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert (response.status, await response.text()) == (503, "upstream sad")
        assert response.content_type == "text/plain"


async def test_fault_cloudflare_page(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(cloudflare=True))
    async with sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 403
        assert response.content_type == "text/html"
        assert await response.text() == CLOUDFLARE_HTML
    assert CLOUDFLARE_HTML.strip() == (FIXTURES / "cloudflare_challenge.html").read_text().strip()


async def test_fault_delay_trips_client_timeout(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(delay=2.0, times=1))
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):
        await sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER, timeout=timeout)
    sim.set_fault(ACME, Fault(delay=0.05, times=1))
    start = asyncio.get_running_loop().time()
    status, _ = await get_json(sim_client, f"/api/organizations/{ACME}/usage")
    assert status == 200  # a delay alone answers normally, only later
    assert asyncio.get_running_loop().time() - start >= 0.05


async def test_fault_drop_gives_connection_error(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(drop=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER)


async def test_fault_truncate_gives_payload_error(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(truncate=True))
    async with sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    sim.set_fault(ACME, Fault(status=500, truncate=True))
    async with sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 500
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_fault_times_then_normal(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=500, times=2))
    statuses = []
    for _ in range(3):
        async with sim_client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
            statuses.append(response.status)
    assert statuses == [500, 500, 200]


async def test_fault_scope_org_routes_and_global(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=502))
    project_uuid = next(iter(sim.orgs[ACME].projects))
    status, _ = await get_json(sim_client, f"/api/organizations/{ACME}/projects/{project_uuid}")
    assert status == 502
    status, _ = await get_json(sim_client, f"/api/organizations/{GLOBEX}/usage")
    assert status == 200
    status, _ = await get_json(sim_client, "/api/bootstrap")
    assert status == 200
    sim.clear_fault(ACME)
    sim.set_fault("*", Fault(status=429, retry_after="3600"))
    for path in ("/api/bootstrap", "/api/organizations", f"/api/organizations/{GLOBEX}/usage"):
        async with sim_client.get(path, headers=BEARER) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "3600")
    with pytest.raises(KeyError):
        sim.set_fault(NOBODY, Fault(status=500))


# Control routes


async def test_control_set_and_clear_fault(sim_client: Client) -> None:
    async with sim_client.put(f"/_simulator/faults/{ACME}", json={"status": 401}) as response:
        assert response.status == 200
        assert (await response.json())["fault"]["status"] == 401
    status, _ = await get_json(sim_client, f"/api/organizations/{ACME}/usage")
    assert status == 401
    async with sim_client.put("/_simulator/faults/*", json={"cloudflare": True}) as response:
        assert response.status == 200
    async with sim_client.get("/_simulator/state") as response:
        faults = (await response.json())["faults"]
    assert set(faults) == {ACME, "*"}
    for key in ("*", ACME):
        async with sim_client.delete(f"/_simulator/faults/{key}") as response:
            assert (await response.json())["cleared"] is True
    status, _ = await get_json(sim_client, f"/api/organizations/{ACME}/usage")
    assert status == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        (f"/_simulator/faults/{ACME}", b"{", 400, "not valid JSON"),
        (f"/_simulator/faults/{ACME}", b'{"status": "x"}', 400, "status"),
        (f"/_simulator/faults/{ACME}", b'{"sleep": 1}', 400, "sleep"),
        (f"/_simulator/faults/{NOBODY}", b'{"status": 500}', 404, NOBODY),
        (f"/_simulator/orgs/{ACME}/usage/claude_code", b'{"utilization": "97"}', 400, "util"),
        (f"/_simulator/orgs/{ACME}/usage/claude_code", b'{"utilization": -3}', 400, "util"),
        (f"/_simulator/orgs/{ACME}/usage/claude_code", b"[97]", 400, "JSON object"),
        (f"/_simulator/orgs/{ACME}/usage/five_hour", b'{"utilization": 97}', 404, "five_hour"),
        (f"/_simulator/orgs/{NOBODY}/usage/x", b'{"utilization": 97}', 404, NOBODY),
        (f"/_simulator/orgs/{ACME}/extra", b'{"used_credits": 1.5}', 400, "used_credits"),
        (f"/_simulator/orgs/{ACME}/extra", b'{"is_enabled": 1}', 400, "is_enabled"),
        (f"/_simulator/orgs/{ACME}/extra", b'{"limit": 1}', 400, "limit"),
    ],
)
async def test_control_refuses_bad_bodies(
    sim_client: Client, sim: Simulator, path: str, body: bytes, status: int, needle: str
) -> None:
    async with sim_client.put(path, data=body) as response:
        assert response.status == status
        assert needle in (await response.json())["error"]["message"]
    assert not sim.faults.snapshot()


async def test_control_set_usage_and_extra(sim_client: Client, sim_clock: FakeClock) -> None:
    path = f"/_simulator/orgs/{INITECH}/usage/five_hour"
    async with sim_client.put(path, json={"utilization": 97}) as response:
        assert response.status == 200
    _, usage = await get_json(sim_client, f"/api/organizations/{INITECH}/usage")
    assert usage["five_hour"]["utilization"] == 97.0
    assert usage["limits"][0]["percent"] == 97.0
    body = {"used_credits": 9900, "monthly_limit": 10000, "is_enabled": True}
    async with sim_client.put(f"/_simulator/orgs/{INITECH}/extra", json=body) as response:
        assert (await response.json())["usage"]["extra_usage"]["utilization"] == 99.0
    sim_clock.now += 24 * 3600
    _, usage = await get_json(sim_client, f"/api/organizations/{INITECH}/usage")
    assert usage["extra_usage"]["used_credits"] == 10000  # climbed, then stopped at the limit


async def test_control_state_lists_orgs_and_windows(sim_client: Client) -> None:
    async with sim_client.get("/_simulator/state") as response:
        state = await response.json()
    orgs = {org["name"]: org for org in state["orgs"]}
    assert set(orgs) == {"acme", "globex", "initech", "seat"}
    assert orgs["globex"]["windows"]["five_hour"]["period"] == 5 * 3600
    assert orgs["seat"]["usage"] == fixture("usage_managed_seat.json")
    assert state["now"] == T0
    assert TOKEN not in json.dumps(state)


# Request log


async def test_request_log_records_and_filters(sim_client: Client, sim: Simulator) -> None:
    await get_json(sim_client, f"/api/organizations/{ACME}/usage", params={"x": "1"})
    await get_json(sim_client, f"/api/organizations/{ACME}/usage")
    await get_json(sim_client, "/api/bootstrap")
    payload = {"url": "https://example.com/a", "allowed_urls": ["https://example.com"]}
    async with sim_client.post(
        f"/api/organizations/{GLOBEX}/cowork/web_fetch", json=payload, headers=BEARER
    ):
        pass
    async with sim_client.get("/_simulator/state"):
        pass  # control traffic is not upstream traffic
    assert len(sim.requests) == 4
    polls = sim.requests_for(ACME)
    assert [(r.method, r.path, r.query_string) for r in polls] == [
        ("GET", f"/api/organizations/{ACME}/usage", "x=1"),
        ("GET", f"/api/organizations/{ACME}/usage", ""),
    ]
    assert polls[0].header("authorization") == f"Bearer {TOKEN}"
    assert polls[0].time == T0
    assert [r.path for r in sim.requests_for(None)] == ["/api/bootstrap"]
    assert json.loads(sim.requests_for(GLOBEX)[0].body) == payload
    async with sim_client.get("/_simulator/requests", params={"org_uuid": ACME}) as response:
        assert (await response.json())["count"] == 2
    sim.clear_requests()
    assert not sim.requests


async def test_request_log_is_bounded_and_sees_faulted_requests(
    sim_clock: FakeClock, aiohttp_client: MakeClient
) -> None:
    sim = Simulator(sim_clock, max_requests=3)
    sim.add_org(ACME, "acme")
    sim.set_fault(ACME, Fault(drop=True, times=1))
    sim_client = await aiohttp_client(simulator_app(sim))
    with pytest.raises(aiohttp.ClientConnectionError):
        await sim_client.get(f"/api/organizations/{ACME}/usage")
    for n in range(4):
        async with sim_client.get(f"/api/organizations/{ACME}/usage", params={"n": str(n)}):
            pass
    assert [r.query_string for r in sim.requests] == ["n=1", "n=2", "n=3"]


# Demo preset


async def test_demo_preset(aiohttp_client: MakeClient) -> None:
    sim_clock = FakeClock(T0)
    sim, creds = demo_simulator(sim_clock)
    sim_client = await aiohttp_client(simulator_app(sim))

    async def usage(name: str) -> tuple[int, Any]:
        org = next(org for org in creds.orgs if org.name == name)
        headers = {"Authorization": f"Bearer {creds.token_for(name)}"}
        return await get_json(sim_client, f"/api/organizations/{org.uuid}/usage", headers=headers)

    assert (await usage("hooli"))[0] == 401
    assert (await usage("soylent"))[0] == 429
    status, before = await usage("initech")
    assert status == 200
    assert 80 <= before["extra_usage"]["utilization"] < 100
    resets_at = parse_ts(before["tangelo"]["resets_at"])
    assert resets_at - T0 <= 5 * 60  # a watcher sees a reset within minutes
    sim_clock.now = resets_at - 1
    _, near = await usage("initech")
    assert near["tangelo"]["utilization"] > 100  # uncapped, so threshold alerts fire
    sim_clock.now = resets_at
    _, after = await usage("initech")
    assert after["tangelo"]["utilization"] == 0.0
    headers = {"Authorization": f"Bearer {creds.account_token}"}
    _, bootstrap = await get_json(sim_client, "/api/bootstrap", headers=headers)
    members = tuple(m["organization"]["uuid"] for m in bootstrap["account"]["memberships"])
    assert members == creds.discovered_org_uuids
    assert len(members) == 2
