"""The OAuth routes (`oauth_usage`, `oauth_profile`) over real HTTP: forwarded to
`[proxy] oauth_base_url` with the same local checks, header rules, streaming, JSON
errors and metrics as the other routes, and a relayed `/api/oauth/usage` refreshing the
orgs that poll it with the caller's credential."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from monitor.simulator import Fault, Simulator, simulator_app
from monitor.state import UsageStore
from monitor.usage import parse_usage
from tests.conftest import MakeClient, MakeServer
from tests.support.config import make_config
from tests.support.metrics import scrape, value
from tests.support.upstream import (
    ORG_A,
    ORG_C,
    TOKEN_A,
    TOKEN_C,
    Upstream,
    fixture_text,
    standard_simulator,
)

AUTH_C = {"Authorization": f"Bearer {TOKEN_C}", "anthropic-beta": "oauth-2025-04-20"}


def frozen_simulator() -> Simulator:
    sim = standard_simulator()
    now = sim.clock()
    sim.clock = lambda: now
    return sim


async def served(make_server: MakeServer, sim: Simulator) -> Upstream:
    return Upstream(sim, await make_server(simulator_app(sim)))


def keys(payload: Any) -> Any:
    """The shape of a JSON value: its keys, nested (values left out)."""
    if isinstance(payload, dict):
        return {key: keys(item) for key, item in payload.items()}
    return None


async def test_oauth_routes_go_to_the_oauth_base_url_and_nowhere_else(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    organizations = await served(aiohttp_server, frozen_simulator())
    oauth = await served(aiohttp_server, frozen_simulator())
    config = make_config(organizations.url, proxy={"oauth_base_url": oauth.url})
    client = await make_client(config, poll=False)
    usage = await client.get("/api/oauth/usage", headers=AUTH_C)
    assert usage.status == 200
    assert await usage.json() == oauth.sim.usage(ORG_C)
    profile = await client.get("/api/oauth/profile", headers=AUTH_C)
    assert profile.status == 200
    assert (await profile.json())["organization"]["uuid"] == ORG_C
    assert [r.path for r in oauth.sim.requests] == ["/api/oauth/usage", "/api/oauth/profile"]
    assert list(organizations.sim.requests) == []


async def test_answers_are_relayed_byte_for_byte_compressed_or_not(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    client = await make_client(make_config(upstream.url), poll=False)
    for path in ("/api/oauth/usage", "/api/oauth/profile"):
        for encoding in ("gzip", "identity"):
            headers = {**AUTH_C, "Accept-Encoding": encoding}
            async with (
                aiohttp.ClientSession(auto_decompress=False) as session,
                session.get(upstream.url + path, headers=headers) as direct,
            ):
                expected = (
                    direct.status,
                    await direct.read(),
                    direct.headers.get("Content-Encoding"),
                )
            async with client.get(path, headers=headers, auto_decompress=False) as proxied:
                got = (
                    proxied.status,
                    await proxied.read(),
                    proxied.headers.get("Content-Encoding"),
                )
            assert got == expected


async def test_the_callers_headers_go_upstream_filtered_and_nothing_is_added(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    orgs = [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"}]
    client = await make_client(make_config(upstream.url, orgs), poll=False)
    headers = {
        **AUTH_C,
        "User-Agent": "usage-widget/1.0",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "dropped",
        "Proxy-Authorization": "Basic dropped",
    }
    response = await client.get("/api/oauth/usage", headers=headers)
    assert response.status == 200
    (seen,) = upstream.sim.requests
    assert seen.header("Authorization") == f"Bearer {TOKEN_C}"
    assert seen.header("anthropic-beta") == "oauth-2025-04-20"
    assert seen.header("User-Agent") == "usage-widget/1.0"
    assert seen.header("X-Hop") is None and seen.header("Proxy-Authorization") is None
    assert TOKEN_A not in json.dumps(seen.headers)  # the daemon's credential is never lent


async def test_local_checks_answer_json_before_anything_goes_upstream(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    client = await make_client(make_config(upstream.url), poll=False)
    missing = await client.get("/api/oauth/usage")
    assert missing.status == 401
    assert (await missing.json())["error"]["type"] == "missing_credentials"
    wrong = await client.post("/api/oauth/profile", headers=AUTH_C)
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET"
    assert (await wrong.json())["error"]["type"] == "method_not_allowed"
    unknown = await client.get("/api/oauth/token", headers=AUTH_C)
    assert unknown.status == 404
    message = (await unknown.json())["error"]["message"]
    assert "GET /api/oauth/usage" in message and "GET /api/oauth/profile" in message
    assert list(upstream.sim.requests) == []


async def test_upstream_refusals_and_failures_reach_the_caller(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    client = await make_client(make_config(upstream.url), poll=False)
    unknown = await client.get("/api/oauth/usage", headers={"Authorization": "Bearer nobody"})
    assert unknown.status == 401
    assert (await unknown.json())["type"] == "error"  # the upstream's envelope, as sent
    upstream.sim.set_fault(ORG_C, Fault(status=429, retry_after="120", times=1))
    limited = await client.get("/api/oauth/usage", headers=AUTH_C)
    assert limited.status == 429 and limited.headers["Retry-After"] == "120"
    assert "X-Monitor-Shielded" not in limited.headers  # shielding is off by default
    gone = make_config(upstream.url, proxy={"oauth_base_url": "http://127.0.0.1:9"})
    unreachable = await (await make_client(gone, poll=False)).get(
        "/api/oauth/profile", headers=AUTH_C
    )
    assert unreachable.status == 502
    assert (await unreachable.json())["error"]["type"] == "upstream_unreachable"


async def test_metrics_count_the_oauth_routes_by_name(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    client = await make_client(make_config(upstream.url), poll=False)
    await client.get("/api/oauth/usage", headers=AUTH_C)
    await client.get("/api/oauth/usage")
    await client.get("/api/oauth/profile", headers=AUTH_C)
    _, samples = await scrape(client)
    total = "claude_proxy_requests_total"
    assert value(samples, total, endpoint="oauth_usage", code="200") == 1
    assert value(samples, total, endpoint="oauth_usage", code="401") == 1
    assert value(samples, total, endpoint="oauth_profile", method="GET", code="200") == 1
    count = "claude_proxy_request_duration_seconds_count"
    assert value(samples, count, endpoint="oauth_usage") == 2


async def test_a_relayed_oauth_usage_refreshes_the_orgs_polling_it_with_that_credential(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    oauth = {"usage_path": "/api/oauth/usage"}
    orgs = [
        {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_C", **oauth},
        # Same URL, another credential: not this caller's usage.
        {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A", **oauth},
    ]
    store = UsageStore()
    client = await make_client(make_config(upstream.url, orgs), poll=False, store=store)
    assert store.get(ORG_C).snapshot is None  # type: ignore[union-attr]
    with_query = await client.get("/api/oauth/usage?x=1", headers=AUTH_C)
    assert with_query.status == 200
    assert store.get(ORG_C).snapshot is None  # type: ignore[union-attr]  # not the URL polled
    response = await client.get("/api/oauth/usage", headers=AUTH_C)
    assert response.status == 200
    gamma = store.get(ORG_C)
    assert gamma is not None and gamma.snapshot is not None
    expected = parse_usage(upstream.sim.usage(ORG_C))
    assert gamma.snapshot.utilizations() == expected.utilizations()
    assert "five_hour" in expected.utilizations()
    assert gamma.last_result is None  # fresher data, not a poll
    acme = store.get(ORG_A)
    assert acme is not None and acme.snapshot is None


async def test_an_org_polling_oauth_usage_elsewhere_is_not_refreshed(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    orgs = [
        {
            "uuid": ORG_C,
            "name": "gamma",
            "token_env": "TOKEN_C",
            "usage_path": "/api/oauth/usage",
            "base_url": "http://127.0.0.1:9",
        }
    ]
    store = UsageStore()
    client = await make_client(make_config(upstream.url, orgs), poll=False, store=store)
    assert (await client.get("/api/oauth/usage", headers=AUTH_C)).status == 200
    assert store.get(ORG_C).snapshot is None  # type: ignore[union-attr]


async def test_the_simulator_answers_in_the_shapes_of_the_samples(
    aiohttp_server: MakeServer,
) -> None:
    upstream = await served(aiohttp_server, frozen_simulator())
    async with aiohttp.ClientSession() as session:
        async with session.get(upstream.url + "/api/oauth/usage", headers=AUTH_C) as usage:
            assert keys(await usage.json()) == keys(
                json.loads(fixture_text("usage_oauth_2025.json"))
            )
        async with session.get(upstream.url + "/api/oauth/profile", headers=AUTH_C) as profile:
            got = await profile.json()
        assert keys(got) == keys(json.loads(fixture_text("oauth_profile.json")))
        assert got["organization"]["uuid"] == ORG_C
        assert got["account"]["has_claude_max"] is True  # org C is on the max plan
        # The org of a token with several is its first; its requests are logged under it.
        async with session.get(
            upstream.url + "/api/oauth/usage", headers={"Authorization": f"Bearer {TOKEN_A}"}
        ) as first:
            assert await first.json() == upstream.sim.usage(ORG_A)
    assert [r.org_uuid for r in upstream.sim.requests] == [ORG_C, ORG_C, ORG_A]
