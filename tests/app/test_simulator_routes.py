"""The simulator's routes over real HTTP: usage, projects, memory, web_fetch, discovery,
credential checks."""

from __future__ import annotations

import gzip
import json

import pytest

from monitor.simulator import Fault, Simulator, simulator_app
from tests.conftest import Client, MakeClient
from tests.support.clock import FakeClock
from tests.support.simulator import (
    ACME,
    BEARER,
    GLOBEX,
    INITECH,
    NOBODY,
    SEAT,
    T0,
    fixture,
    get_json,
    parse_ts,
    shape_of,
    usage_of,
)


async def test_usage_route_serves_the_model(sim_client: Client, sim: Simulator) -> None:
    for org in (ACME, GLOBEX, INITECH, SEAT):
        status, body = await get_json(sim_client, f"/api/organizations/{org}/usage")
        assert status == 200
        assert body == usage_of(sim, org)


async def test_usage_climbs_and_resets_over_http(sim_client: Client, sim_clock: FakeClock) -> None:
    path = f"/api/organizations/{GLOBEX}/usage"
    _, first = await get_json(sim_client, path)
    sim_clock.now += 3600
    _, later = await get_json(sim_client, path)
    assert later["five_hour"]["utilization"] == 18.0  # 90% over 5 h, one hour in
    assert later["five_hour"]["resets_at"] == first["five_hour"]["resets_at"]
    sim_clock.now = parse_ts(first["five_hour"]["resets_at"])
    _, reset = await get_json(sim_client, path)
    assert reset["five_hour"]["utilization"] == 0.0
    assert parse_ts(reset["five_hour"]["resets_at"]) == sim_clock.now + 5 * 3600


async def test_set_utilization_is_visible_and_keeps_climbing(
    sim_client: Client, sim: Simulator, sim_clock: FakeClock
) -> None:
    sim.set_utilization(ACME, "claude_code", 97)
    sim_clock.now += 60
    _, body = await get_json(sim_client, f"/api/organizations/{ACME}/usage")
    assert body["claude_code"]["utilization"] == pytest.approx(97 + 85 / (5 * 60), abs=0.01)


async def test_project_docs_and_files(sim_client: Client, sim: Simulator) -> None:
    project_uuid = next(iter(sim.orgs[ACME].projects))
    base = f"/api/organizations/{ACME}/projects/{project_uuid}"
    status, project = await get_json(sim_client, base)
    assert status == 200
    assert project["uuid"] == project_uuid
    assert {"name", "created_at", "docs_count", "files_count"} <= set(project)
    _, docs = await get_json(sim_client, f"{base}/docs")
    assert len(docs) == project["docs_count"]
    assert all(doc["project_uuid"] == project_uuid and doc["content"] for doc in docs)
    _, files = await get_json(sim_client, f"{base}/files")
    assert len(files) == project["files_count"]
    assert all({"file_uuid", "file_name", "file_kind"} <= set(item) for item in files)
    status, error = await get_json(sim_client, f"/api/organizations/{ACME}/projects/{NOBODY}/docs")
    assert (status, error["error"]["type"]) == (404, "not_found_error")


async def test_memory_route(sim_client: Client, sim: Simulator) -> None:
    empty, full = list(sim.orgs[ACME].projects)[:2]
    path = f"/api/organizations/{ACME}/memory"
    status, body = await get_json(sim_client, path, params={"project_uuid": empty})
    assert (status, body) == (200, fixture("memory_empty.json"))
    _, body = await get_json(sim_client, path, params={"project_uuid": full, "limit": "1"})
    assert body["memory"]
    assert body["controls"] is None
    assert parse_ts(body["updated_at"]) < T0
    for params in ({}, {"project_uuid": "not-a-uuid"}, {"projectUuid": empty}):
        status, body = await get_json(sim_client, path, params=params)
        assert (status, body["type"], body["error"]["type"]) == (
            400,
            "error",
            "invalid_request_error",
        )
    status, body = await get_json(sim_client, path, params={"project_uuid": NOBODY})
    assert status == 404


async def test_web_fetch_allowed_and_refused(sim_client: Client) -> None:
    path = f"/api/organizations/{ACME}/cowork/web_fetch"
    ok = {"url": "https://example.com/doc", "allowed_urls": ["https://example.com"]}
    async with sim_client.post(path, json=ok, headers=BEARER) as response:
        assert response.status == 200
        body = await response.json()
    assert shape_of(body) == shape_of(fixture("web_fetch_ok.json"))
    assert body["url"] == ok["url"]
    refused = {"url": "https://evil.example/doc", "allowed_urls": ["https://example.com"]}
    async with sim_client.post(path, json=refused, headers=BEARER) as response:
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
async def test_web_fetch_bad_body(sim_client: Client, body: bytes, field: str) -> None:
    path = f"/api/organizations/{ACME}/cowork/web_fetch"
    async with sim_client.post(path, data=body, headers=BEARER) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert field in error["message"]


async def test_discovery_routes(sim_client: Client) -> None:
    headers = {"Authorization": "Bearer tok-acme-only"}
    _, orgs = await get_json(sim_client, "/api/organizations", headers=headers)
    assert [(org["uuid"], org["name"], org["capabilities"]) for org in orgs] == [
        (ACME, "acme", ["chat", "raven"])
    ]
    _, bootstrap = await get_json(sim_client, "/api/bootstrap")
    assert shape_of(bootstrap) == shape_of(fixture("account_bootstrap.json"))
    members = [m["organization"]["uuid"] for m in bootstrap["account"]["memberships"]]
    assert members == [ACME, GLOBEX, INITECH, SEAT]
    _, account = await get_json(sim_client, "/api/account")
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
    sim_client: Client,
    headers: dict[str, str],
    org: str,
    status: int,
    error_type: str | None,
    message: str | None,
) -> None:
    async with sim_client.get(f"/api/organizations/{org}/usage", headers=headers) as response:
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


async def test_removed_org_is_not_found(sim_client: Client, sim: Simulator) -> None:
    sim.set_fault(ACME, Fault(status=500))
    sim.remove_org(ACME)
    status, body = await get_json(sim_client, f"/api/organizations/{ACME}/usage")
    assert (status, body["error"]["type"]) == (404, "not_found_error")
    _, bootstrap = await get_json(sim_client, "/api/bootstrap")
    assert ACME not in json.dumps(bootstrap)
    assert not sim.faults.snapshot()


async def test_router_misses_are_json_errors(sim_client: Client) -> None:
    status, body = await get_json(sim_client, f"/api/organizations/{ACME}/nothing")
    assert (status, body["error"]["type"]) == (404, "not_found_error")
    async with sim_client.delete(f"/api/organizations/{ACME}/usage", headers=BEARER) as response:
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
