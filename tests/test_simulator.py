"""The simulator: pure model first, then every route over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from monitor.simulator import (
    CLOUDFLARE_HTML,
    ExtraSpec,
    Fault,
    FaultError,
    Simulator,
    WindowSpec,
    demo_simulator,
    simulator_app,
)
from monitor.simulator.faults import FaultTable
from monitor.simulator.model import SimAccount, authenticate, url_allowed
from monitor.simulator.windows import (
    override_window,
    read_extra,
    read_window,
    start_window,
    update_extra,
)

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a round hour so resets_at are readable

ACME = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
GLOBEX = "3c9e1f52-8a47-4d6b-b1e0-7f2a9c4d5e63"
INITECH = "b84d2e17-5c3a-4f98-a6e1-0d7c3b9f2a45"
SEAT = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
NOBODY = "00000000-0000-4000-8000-000000000000"
TOKEN = "tok-member"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    sim = Simulator(clock)
    sim.add_org(ACME, "acme", plan="team", shape="seed")
    sim.add_org(GLOBEX, "globex", plan="max", shape="oauth_2025")
    sim.add_org(INITECH, "initech", plan="enterprise", shape="limits_2026")
    sim.add_org(SEAT, "seat", plan="pro", shape="managed_seat")
    sim.add_account(token=TOKEN, session_key="sess-ok", org_uuids=[ACME, GLOBEX, INITECH, SEAT])
    sim.add_account(token="tok-acme-only", org_uuids=[ACME])
    sim.add_account(token="tok-old", org_uuids=[ACME], expired=True)
    return sim


@pytest.fixture
async def client(sim: Simulator, aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(simulator_app(sim))


def shape_of(value: Any) -> Any:
    """Keys and JSON types, recursively: what must match the recorded samples."""
    if isinstance(value, dict):
        return {key: shape_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape_of(value[0])] if value else []
    return (
        "number"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else type(value).__name__
    )


def usage_of(sim: Simulator, org: str) -> Any:
    """The rendered payload, loosely typed so tests can index into it."""
    return sim.usage(org)


def parse_ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# Windows and extra usage, as plain calls


def test_window_climbs_from_zero_and_resets_at_resets_at() -> None:
    state = start_window(WindowSpec.filling(100.0, 50.0), now=T0)
    assert read_window(state, T0).utilization == 0.0
    assert read_window(state, T0 + 50).utilization == 25.0
    late = read_window(state, T0 + 99.9)
    assert late.utilization == 49.95
    assert late.resets_at == T0 + 100
    after = read_window(state, T0 + 100)
    assert (after.utilization, after.resets_at) == (0.0, T0 + 200)
    assert read_window(state, T0 + 1030).resets_at == T0 + 1100


def test_window_cap_and_uncapped_overshoot() -> None:
    capped = start_window(WindowSpec.filling(100.0, 150.0), now=T0)
    uncapped = start_window(WindowSpec.filling(100.0, 150.0, cap=None), now=T0)
    assert read_window(capped, T0 + 90).utilization == 100.0
    assert read_window(uncapped, T0 + 90).utilization == 135.0


def test_window_phase_starts_mid_cycle() -> None:
    state = start_window(WindowSpec.filling(100.0, 80.0, phase=0.25), now=T0)
    reading = read_window(state, T0)
    assert (reading.utilization, reading.resets_at) == (20.0, T0 + 75)


def test_override_keeps_climbing_then_resets() -> None:
    state = start_window(WindowSpec.filling(100.0, 10.0), now=T0)
    state = override_window(state, 97.0, now=T0 + 10)
    assert read_window(state, T0 + 10).utilization == 97.0
    assert read_window(state, T0 + 20).utilization == 98.0
    assert read_window(state, T0 + 100).utilization == 0.0
    above = override_window(state, 120.0, now=T0 + 110)
    assert read_window(above, T0 + 111).utilization == 120.0  # set above the cap: kept
    with pytest.raises(ValueError, match="utilization"):
        override_window(state, -1.0, now=T0)


def test_unused_window_has_null_reset_until_touched() -> None:
    state = start_window(WindowSpec.unused(100.0, rate=1.0), now=T0)
    assert read_window(state, T0 + 500) == read_window(state, T0)
    assert read_window(state, T0).resets_at is None
    touched = override_window(state, 5.0, now=T0 + 500)
    reading = read_window(touched, T0 + 510)
    assert (reading.utilization, reading.resets_at) == (15.0, T0 + 600)


def test_window_spec_rejects_nonsense_and_scales() -> None:
    with pytest.raises(ValueError, match="period"):
        WindowSpec(period=0, rate=1)
    fast = WindowSpec.filling(5 * 3600.0, 90.0).scaled(60)
    assert fast.period == 300.0
    assert fast.rate * fast.period == pytest.approx(90.0)


def test_extra_usage_climbs_stops_at_limit_and_reanchors() -> None:
    extra = ExtraSpec(is_enabled=True, monthly_limit=1000, used_credits=100, rate=2.0, anchor=T0)
    assert read_extra(extra, T0 + 50).used_credits == 200
    assert read_extra(extra, T0 + 50).utilization == 20.0
    assert read_extra(extra, T0 + 10_000).used_credits == 1000
    paused = update_extra(extra, T0 + 50, is_enabled=False)
    assert read_extra(paused, T0 + 500).used_credits == 200
    assert read_extra(ExtraSpec(False, None, 0), T0).utilization is None


# Payload shapes against the recorded samples


@pytest.mark.parametrize(
    ("org", "sample"),
    [
        (ACME, "usage_seed_shape.json"),
        (GLOBEX, "usage_oauth_2025.json"),
        (INITECH, "usage_2026_limits.json"),
        (SEAT, "usage_managed_seat.json"),
    ],
)
def test_usage_shapes_match_samples(
    sim: Simulator, clock: FakeClock, org: str, sample: str
) -> None:
    clock.now += 600
    payload = usage_of(sim, org)
    expected = fixture(sample)
    assert list(payload) == list(expected)
    for key, value in expected.items():
        if value is not None and payload[key] is not None:
            assert shape_of(payload[key]) == shape_of(value), key


def test_timestamps_use_the_samples_offset_styles(sim: Simulator) -> None:
    seed = usage_of(sim, ACME)["claude_code"]
    assert seed["resets_at"] == "2027-01-15T13:00:00.000000+00:00"
    limits = usage_of(sim, INITECH)
    assert limits["five_hour"]["resets_at"].endswith("Z")
    assert limits["seven_day"]["resets_at"].endswith("+00:00")
    assert parse_ts(limits["five_hour"]["resets_at"]) == T0 + 5 * 3600


def test_seed_unused_window_is_all_null_and_oauth_unused_is_zero(sim: Simulator) -> None:
    assert usage_of(sim, ACME)["projects"] == {"resets_at": None, "utilization": None}
    assert usage_of(sim, GLOBEX)["seven_day_opus"] == {"utilization": 0.0, "resets_at": None}


def test_limits_and_spend_follow_windows_and_extra(sim: Simulator, clock: FakeClock) -> None:
    sim.set_utilization(INITECH, "five_hour", 95.0)
    sim.set_extra(INITECH, used_credits=8321, monthly_limit=10000)
    clock.now += 1
    payload = usage_of(sim, INITECH)
    session = payload["limits"][0]
    assert session["kind"] == "session"
    assert session["percent"] == payload["five_hour"]["utilization"]
    assert session["resets_at"] == payload["five_hour"]["resets_at"]
    assert session["severity"] == "high"
    assert payload["limits"][1]["severity"] == "normal"
    extra = payload["extra_usage"]
    assert payload["spend"]["used"]["amount_minor"] == extra["used_credits"]
    assert payload["spend"]["percent"] == extra["utilization"]
    assert extra["utilization"] == round(extra["used_credits"] / 10000 * 100, 2)


def test_added_window_beyond_the_shape_is_rendered(clock: FakeClock) -> None:
    sim = Simulator(clock)
    sim.add_org(
        ACME, "acme", shape="oauth_2025", windows={"seven_day_cowork": WindowSpec(100.0, 1.0)}
    )
    payload = usage_of(sim, ACME)
    assert payload["five_hour"] is None
    assert list(payload)[-2:] == ["seven_day_cowork", "extra_usage"]


def test_time_scale_shortens_windows(clock: FakeClock) -> None:
    sim = Simulator(clock)
    sim.add_org(ACME, "acme", shape="oauth_2025", time_scale=60)
    assert parse_ts(usage_of(sim, ACME)["five_hour"]["resets_at"]) == T0 + 300


# Credentials, faults and URL rules, as plain calls


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"Authorization": "Bearer "}, 429, "Rate limited. Please try again later."),
        ({"Authorization": "Bearer nope"}, 401, "Invalid bearer token"),
        ({"Authorization": "Bearer old"}, 401, "OAuth token has expired."),
        ({"Authorization": "Basic abc"}, 401, "Invalid authorization header"),
        ({"Cookie": "sessionKey=bad"}, 403, "account_session_invalid"),
        ({"Cookie": "other=1"}, 401, "Missing authentication credentials"),
        ({}, 401, "Missing authentication credentials"),
    ],
)
def test_authenticate_refusals(headers: dict[str, str], status: int, message: str) -> None:
    accounts = [
        SimAccount("a", (ACME,), token="good", session_key="sess"),
        SimAccount("b", (ACME,), token="old", expired=True),
    ]
    result = authenticate(headers, accounts)
    assert not isinstance(result, SimAccount)
    assert (result.status, result.message) == (status, message)


def test_authenticate_accepts_token_and_cookie() -> None:
    account = SimAccount("a", (ACME,), token="good", session_key="sess")
    assert authenticate({"Authorization": "Bearer good"}, [account]) is account
    assert authenticate({"Cookie": "lang=en; sessionKey=sess"}, [account]) is account


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://example.com/doc", ["https://example.com"]),
        ("https://example.com/docs/a", ["https://example.com/docs/"]),
        ("https://EXAMPLE.com/docs", ["https://example.com/docs"]),
    ],
)
def test_url_allowed(url: str, allowed: list[str]) -> None:
    assert url_allowed(url, allowed)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://example.com/doc", ["https://example.com"]),
        ("https://example.com.evil.io/", ["https://example.com"]),
        ("https://example.com/docsecret", ["https://example.com/docs"]),
        ("https://example.com:8443/", ["https://example.com"]),
        ("https://example.com/", ["not a url", ""]),
    ],
)
def test_url_refused(url: str, allowed: list[str]) -> None:
    assert not url_allowed(url, allowed)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "JSON object"),
        ({"status": "500"}, "status"),
        ({"status": True}, "status"),
        ({"status": 700}, "status"),
        ({"delay": -1}, "delay"),
        ({"delay": "1"}, "delay"),
        ({"drop": "yes"}, "drop"),
        ({"times": 0, "status": 500}, "times"),
        ({"body": "x"}, "body"),
        ({"drop": True, "status": 500}, "drop"),
        ({"cloudflare": True, "status": 500}, "cloudflare"),
        ({"colour": "red"}, "colour"),
        ({}, "does nothing"),
    ],
)
def test_fault_from_json_refuses(data: object, field: str) -> None:
    with pytest.raises(FaultError, match=field):
        Fault.from_json(data)


def test_fault_json_round_trip() -> None:
    fault = Fault(status=429, retry_after="0", delay=0.5, truncate=True, times=3)
    assert Fault.from_json(json.loads(json.dumps(fault.to_json()))) == fault


def test_model_hooks_refuse_what_cannot_exist(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="shape"):
        sim.add_org(NOBODY, "x", shape="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token or a session_key"):
        sim.add_account(org_uuids=[ACME])
    with pytest.raises(KeyError):
        sim.set_utilization(ACME, "five_hour", 10)


def test_fault_table_times_and_global_precedence() -> None:
    table = FaultTable()
    table.set(ACME, Fault(status=500, times=2))
    assert table.take(ACME) == Fault(status=500, times=2)
    assert table.take(GLOBEX) is None
    assert table.take(ACME) is not None
    assert table.take(ACME) is None
    table.set(ACME, Fault(status=500))
    table.set("*", Fault(cloudflare=True, times=1))
    assert table.take(ACME) == Fault(cloudflare=True, times=1)
    assert table.take(None) is None  # the global one was used up
    assert table.take(ACME) == Fault(status=500)


# Routes over HTTP


async def get_json(client: Client, path: str, **kwargs: Any) -> tuple[int, Any]:
    kwargs.setdefault("headers", BEARER)
    async with client.get(path, **kwargs) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_usage_route_serves_the_model(client: Client, sim: Simulator) -> None:
    for org in (ACME, GLOBEX, INITECH, SEAT):
        status, body = await get_json(client, f"/api/organizations/{org}/usage")
        assert status == 200
        assert body == usage_of(sim, org)


async def test_usage_climbs_and_resets_over_http(client: Client, clock: FakeClock) -> None:
    path = f"/api/organizations/{GLOBEX}/usage"
    _, first = await get_json(client, path)
    clock.now += 3600
    _, later = await get_json(client, path)
    assert later["five_hour"]["utilization"] == 18.0  # 90% over 5 h, one hour in
    assert later["five_hour"]["resets_at"] == first["five_hour"]["resets_at"]
    clock.now = parse_ts(first["five_hour"]["resets_at"])
    _, reset = await get_json(client, path)
    assert reset["five_hour"]["utilization"] == 0.0
    assert parse_ts(reset["five_hour"]["resets_at"]) == clock.now + 5 * 3600


async def test_set_utilization_is_visible_and_keeps_climbing(
    client: Client, sim: Simulator, clock: FakeClock
) -> None:
    sim.set_utilization(ACME, "claude_code", 97)
    clock.now += 60
    _, body = await get_json(client, f"/api/organizations/{ACME}/usage")
    assert body["claude_code"]["utilization"] == pytest.approx(97 + 85 / (5 * 60), abs=0.01)


async def test_project_docs_and_files(client: Client, sim: Simulator) -> None:
    project_uuid = next(iter(sim.orgs[ACME].projects))
    base = f"/api/organizations/{ACME}/projects/{project_uuid}"
    status, project = await get_json(client, base)
    assert status == 200
    assert project["uuid"] == project_uuid
    assert {"name", "created_at", "docs_count", "files_count"} <= set(project)
    _, docs = await get_json(client, f"{base}/docs")
    assert len(docs) == project["docs_count"]
    assert all(doc["project_uuid"] == project_uuid and doc["content"] for doc in docs)
    _, files = await get_json(client, f"{base}/files")
    assert len(files) == project["files_count"]
    assert all({"file_uuid", "file_name", "file_kind"} <= set(item) for item in files)
    status, error = await get_json(client, f"/api/organizations/{ACME}/projects/{NOBODY}/docs")
    assert (status, error["error"]["type"]) == (404, "not_found_error")


async def test_memory_route(client: Client, sim: Simulator) -> None:
    empty, full = list(sim.orgs[ACME].projects)[:2]
    path = f"/api/organizations/{ACME}/memory"
    status, body = await get_json(client, path, params={"project_uuid": empty})
    assert (status, body) == (200, fixture("memory_empty.json"))
    _, body = await get_json(client, path, params={"project_uuid": full, "limit": "1"})
    assert body["memory"]
    assert body["controls"] is None
    assert parse_ts(body["updated_at"]) < T0
    for params in ({}, {"project_uuid": "not-a-uuid"}, {"projectUuid": empty}):
        status, body = await get_json(client, path, params=params)
        assert (status, body["type"], body["error"]["type"]) == (
            400,
            "error",
            "invalid_request_error",
        )
    status, body = await get_json(client, path, params={"project_uuid": NOBODY})
    assert status == 404


async def test_web_fetch_allowed_and_refused(client: Client) -> None:
    path = f"/api/organizations/{ACME}/cowork/web_fetch"
    ok = {"url": "https://example.com/doc", "allowed_urls": ["https://example.com"]}
    async with client.post(path, json=ok, headers=BEARER) as response:
        assert response.status == 200
        body = await response.json()
    assert shape_of(body) == shape_of(fixture("web_fetch_ok.json"))
    assert body["url"] == ok["url"]
    refused = {"url": "https://evil.example/doc", "allowed_urls": ["https://example.com"]}
    async with client.post(path, json=refused, headers=BEARER) as response:
        assert response.status == 403
        assert await response.json() == fixture("web_fetch_not_allowed.json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "Expecting value"),
        (b"[]", "JSON object"),
        (b'{"allowed_urls": []}', "url"),
        (b'{"url": "ftp://x/y", "allowed_urls": []}', "url"),
        (b'{"url": "https://x/y", "allowed_urls": "https://x"}', "allowed_urls"),
        (b'{"url": "https://x/y", "allowed_urls": [1]}', "allowed_urls"),
    ],
)
async def test_web_fetch_bad_body(client: Client, body: bytes, field: str) -> None:
    path = f"/api/organizations/{ACME}/cowork/web_fetch"
    async with client.post(path, data=body, headers=BEARER) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert field in error["message"]


async def test_discovery_routes(client: Client) -> None:
    headers = {"Authorization": "Bearer tok-acme-only"}
    _, orgs = await get_json(client, "/api/organizations", headers=headers)
    assert [(org["uuid"], org["name"], org["capabilities"]) for org in orgs] == [
        (ACME, "acme", ["chat", "raven"])
    ]
    _, bootstrap = await get_json(client, "/api/bootstrap")
    assert shape_of(bootstrap) == shape_of(fixture("account_bootstrap.json"))
    members = [m["organization"]["uuid"] for m in bootstrap["account"]["memberships"]]
    assert members == [ACME, GLOBEX, INITECH, SEAT]
    _, account = await get_json(client, "/api/account")
    assert account == bootstrap["account"]


@pytest.mark.parametrize(
    ("headers", "org", "status", "error_type", "message"),
    [
        (BEARER, ACME, 200, None, None),
        ({"Cookie": "sessionKey=sess-ok"}, ACME, 200, None, None),
        ({"Authorization": "Bearer "}, ACME, 429, "rate_limit_error", None),
        ({"Authorization": "Bearer wrong"}, ACME, 401, "authentication_error", None),
        ({"Authorization": "Bearer tok-old"}, ACME, 401, "authentication_error", "expired"),
        ({"Cookie": "sessionKey=bad"}, ACME, 403, "permission_error", "account_session_invalid"),
        ({}, ACME, 401, "authentication_error", None),
        ({"Authorization": "Bearer tok-acme-only"}, GLOBEX, 403, "permission_error", None),
        (BEARER, NOBODY, 404, "not_found_error", None),
    ],
)
async def test_credential_checks(
    client: Client,
    headers: dict[str, str],
    org: str,
    status: int,
    error_type: str | None,
    message: str | None,
) -> None:
    async with client.get(f"/api/organizations/{org}/usage", headers=headers) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        body = await response.json()
        if status == 429:
            assert response.headers["retry-after"] == "0"
    if error_type is None:
        assert "extra_usage" in body
    else:
        assert body["type"] == "error"
        assert body["error"]["type"] == error_type
        assert message is None or message in body["error"]["message"]


async def test_removed_org_is_not_found(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=500))
    sim.remove_org(ACME)
    status, body = await get_json(client, f"/api/organizations/{ACME}/usage")
    assert (status, body["error"]["type"]) == (404, "not_found_error")
    _, bootstrap = await get_json(client, "/api/bootstrap")
    assert ACME not in json.dumps(bootstrap)
    assert not sim.faults.snapshot()


async def test_router_misses_are_json_errors(client: Client) -> None:
    status, body = await get_json(client, f"/api/organizations/{ACME}/nothing")
    assert (status, body["error"]["type"]) == (404, "not_found_error")
    async with client.delete(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 405
        assert (await response.json())["type"] == "error"


async def test_gzip_when_asked(sim: Simulator, aiohttp_client: MakeClient) -> None:
    raw = await aiohttp_client(simulator_app(sim), auto_decompress=False)
    path = f"/api/organizations/{ACME}/usage"
    async with raw.get(path, headers=BEARER | {"Accept-Encoding": "gzip"}) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(await response.read())) == usage_of(sim, ACME)
    async with raw.get(path, headers=BEARER | {"Accept-Encoding": "identity"}) as response:
        assert "Content-Encoding" not in response.headers
        assert json.loads(await response.read()) == usage_of(sim, ACME)


# Faults over HTTP


async def test_fault_status_with_retry_after(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=429, retry_after="0"))
    async with client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "0"
        assert (await response.json())["error"]["type"] == "rate_limit_error"
    sim.set_fault(ACME, Fault(status=503, body="upstream sad", content_type="text/plain"))
    async with client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert (response.status, await response.text()) == (503, "upstream sad")
        assert response.content_type == "text/plain"


async def test_fault_cloudflare_page(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(cloudflare=True))
    async with client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 403
        assert response.content_type == "text/html"
        assert await response.text() == CLOUDFLARE_HTML
    assert CLOUDFLARE_HTML.strip() == (FIXTURES / "cloudflare_challenge.html").read_text().strip()


async def test_fault_delay_trips_client_timeout(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(delay=2.0, times=1))
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):
        await client.get(f"/api/organizations/{ACME}/usage", headers=BEARER, timeout=timeout)
    sim.set_fault(ACME, Fault(delay=0.05, times=1))
    start = asyncio.get_running_loop().time()
    status, _ = await get_json(client, f"/api/organizations/{ACME}/usage")
    assert status == 200  # a delay alone answers normally, only later
    assert asyncio.get_running_loop().time() - start >= 0.05


async def test_fault_drop_gives_connection_error(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(drop=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.get(f"/api/organizations/{ACME}/usage", headers=BEARER)


async def test_fault_truncate_gives_payload_error(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(truncate=True))
    async with client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    sim.set_fault(ACME, Fault(status=500, truncate=True))
    async with client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
        assert response.status == 500
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_fault_times_then_normal(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=500, times=2))
    statuses = []
    for _ in range(3):
        async with client.get(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
            statuses.append(response.status)
    assert statuses == [500, 500, 200]


async def test_fault_scope_org_routes_and_global(client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=502))
    project_uuid = next(iter(sim.orgs[ACME].projects))
    status, _ = await get_json(client, f"/api/organizations/{ACME}/projects/{project_uuid}")
    assert status == 502
    status, _ = await get_json(client, f"/api/organizations/{GLOBEX}/usage")
    assert status == 200
    status, _ = await get_json(client, "/api/bootstrap")
    assert status == 200
    sim.clear_fault(ACME)
    sim.set_fault("*", Fault(status=429, retry_after="3600"))
    for path in ("/api/bootstrap", "/api/organizations", f"/api/organizations/{GLOBEX}/usage"):
        async with client.get(path, headers=BEARER) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "3600")
    with pytest.raises(KeyError):
        sim.set_fault(NOBODY, Fault(status=500))


# Control routes


async def test_control_set_and_clear_fault(client: Client, sim: Simulator) -> None:
    async with client.put(f"/_simulator/faults/{ACME}", json={"status": 401}) as response:
        assert response.status == 200
        assert (await response.json())["fault"]["status"] == 401
    status, _ = await get_json(client, f"/api/organizations/{ACME}/usage")
    assert status == 401
    async with client.put("/_simulator/faults/*", json={"cloudflare": True}) as response:
        assert response.status == 200
    async with client.get("/_simulator/state") as response:
        faults = (await response.json())["faults"]
    assert set(faults) == {ACME, "*"}
    for key in ("*", ACME):
        async with client.delete(f"/_simulator/faults/{key}") as response:
            assert (await response.json())["cleared"] is True
    status, _ = await get_json(client, f"/api/organizations/{ACME}/usage")
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
    client: Client, sim: Simulator, path: str, body: bytes, status: int, needle: str
) -> None:
    async with client.put(path, data=body) as response:
        assert response.status == status
        assert needle in (await response.json())["error"]["message"]
    assert not sim.faults.snapshot()


async def test_control_set_usage_and_extra(client: Client, clock: FakeClock) -> None:
    path = f"/_simulator/orgs/{INITECH}/usage/five_hour"
    async with client.put(path, json={"utilization": 97}) as response:
        assert response.status == 200
    _, usage = await get_json(client, f"/api/organizations/{INITECH}/usage")
    assert usage["five_hour"]["utilization"] == 97.0
    assert usage["limits"][0]["percent"] == 97.0
    body = {"used_credits": 9900, "monthly_limit": 10000, "is_enabled": True}
    async with client.put(f"/_simulator/orgs/{INITECH}/extra", json=body) as response:
        assert (await response.json())["usage"]["extra_usage"]["utilization"] == 99.0
    clock.now += 24 * 3600
    _, usage = await get_json(client, f"/api/organizations/{INITECH}/usage")
    assert usage["extra_usage"]["used_credits"] == 10000  # climbed, then stopped at the limit


async def test_control_state_lists_orgs_and_windows(client: Client) -> None:
    async with client.get("/_simulator/state") as response:
        state = await response.json()
    orgs = {org["name"]: org for org in state["orgs"]}
    assert set(orgs) == {"acme", "globex", "initech", "seat"}
    assert orgs["globex"]["windows"]["five_hour"]["period"] == 5 * 3600
    assert orgs["seat"]["usage"] == fixture("usage_managed_seat.json")
    assert state["now"] == T0
    assert TOKEN not in json.dumps(state)


# Request log


async def test_request_log_records_and_filters(client: Client, sim: Simulator) -> None:
    await get_json(client, f"/api/organizations/{ACME}/usage", params={"x": "1"})
    await get_json(client, f"/api/organizations/{ACME}/usage")
    await get_json(client, "/api/bootstrap")
    payload = {"url": "https://example.com/a", "allowed_urls": ["https://example.com"]}
    async with client.post(
        f"/api/organizations/{GLOBEX}/cowork/web_fetch", json=payload, headers=BEARER
    ):
        pass
    async with client.get("/_simulator/state"):
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
    async with client.get("/_simulator/requests", params={"org_uuid": ACME}) as response:
        assert (await response.json())["count"] == 2
    sim.clear_requests()
    assert not sim.requests


async def test_request_log_is_bounded_and_sees_faulted_requests(
    clock: FakeClock, aiohttp_client: MakeClient
) -> None:
    sim = Simulator(clock, max_requests=3)
    sim.add_org(ACME, "acme")
    sim.set_fault(ACME, Fault(drop=True, times=1))
    client = await aiohttp_client(simulator_app(sim))
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.get(f"/api/organizations/{ACME}/usage")
    for n in range(4):
        async with client.get(f"/api/organizations/{ACME}/usage", params={"n": str(n)}):
            pass
    assert [r.query_string for r in sim.requests] == ["n=1", "n=2", "n=3"]


# Demo preset


async def test_demo_preset(aiohttp_client: MakeClient) -> None:
    clock = FakeClock()
    sim, creds = demo_simulator(clock)
    client = await aiohttp_client(simulator_app(sim))

    async def usage(name: str) -> tuple[int, Any]:
        org = next(org for org in creds.orgs if org.name == name)
        headers = {"Authorization": f"Bearer {creds.token_for(name)}"}
        return await get_json(client, f"/api/organizations/{org.uuid}/usage", headers=headers)

    assert (await usage("hooli"))[0] == 401
    assert (await usage("soylent"))[0] == 429
    status, before = await usage("initech")
    assert status == 200
    assert 80 <= before["extra_usage"]["utilization"] < 100
    resets_at = parse_ts(before["tangelo"]["resets_at"])
    assert resets_at - T0 <= 5 * 60  # a watcher sees a reset within minutes
    clock.now = resets_at - 1
    _, near = await usage("initech")
    assert near["tangelo"]["utilization"] > 100  # uncapped, so threshold alerts fire
    clock.now = resets_at
    _, after = await usage("initech")
    assert after["tangelo"]["utilization"] == 0.0
    headers = {"Authorization": f"Bearer {creds.account_token}"}
    _, bootstrap = await get_json(client, "/api/bootstrap", headers=headers)
    members = tuple(m["organization"]["uuid"] for m in bootstrap["account"]["memberships"])
    assert members == creds.discovered_org_uuids
    assert len(members) == 2
