"""The simulator's expiring tokens and the demo's renewed org: what a newcomer sees as a
credential renewed with no gap."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from monitor.app import Parts
from monitor.demo import CLAUDE_CODE_TOKEN_KEY, demo_config
from monitor.simulator import demo_simulator, renew_once, simulator_app
from monitor.state import PollResult
from tests.conftest import MakeClient, MakeServer
from tests.support.clock import FakeClock

MakeParts = Callable[..., Awaitable[Parts]]


async def test_an_issued_token_works_until_it_expires_then_401_token_expired(
    aiohttp_client: MakeClient,
) -> None:
    clock = FakeClock()
    sim, credentials = demo_simulator(clock)
    client = await aiohttp_client(simulator_app(sim))
    wayne = credentials.renewed
    token = sim.issue_token(wayne.account_uuid, lifetime=20)
    path = f"/api/organizations/{wayne.uuid}/usage"
    headers = {"Authorization": f"Bearer {token.token}"}
    assert (await client.get(path, headers=headers)).status == 200
    clock.advance(20)
    refused = await client.get(path, headers=headers)
    assert refused.status == 401
    error = json.loads(await refused.read())["error"]
    assert error["type"] == "authentication_error"
    assert error["details"]["error_code"] == "token_expired"
    # a newer token keeps working; the old one stays dead
    newer = sim.issue_token(wayne.account_uuid, lifetime=20)
    assert (
        await client.get(path, headers={"Authorization": f"Bearer {newer.token}"})
    ).status == 200


async def test_the_demo_org_reads_the_file_the_demo_renews(
    aiohttp_server: MakeServer, make_parts: MakeParts, tmp_path: Path
) -> None:
    clock = FakeClock()
    sim, credentials = demo_simulator(clock)
    server = await aiohttp_server(simulator_app(sim))
    wayne = credentials.renewed
    path = tmp_path / ".credentials.json"
    renew_once(sim, wayne.account_uuid, path, lifetime=90)
    config = demo_config(credentials, str(server.make_url("")).rstrip("/"), path)
    (org,) = (o for o in config.orgs if o.name == wayne.name)
    assert org.token_json_key == CLAUDE_CODE_TOKEN_KEY
    parts = await make_parts(config, clock=clock)
    parts.poller.apply_targets()
    for _ in range(3):  # renewed every 60 s, each token living 90 s: never a gap
        assert await parts.poller.poll(wayne.uuid) is PollResult.SUCCESS
        clock.advance(60)
        renew_once(sim, wayne.account_uuid, path, lifetime=90)
    assert await parts.poller.poll(wayne.uuid) is PollResult.SUCCESS
    state = parts.store.get(wayne.uuid)
    assert state is not None
    assert state.results[PollResult.SUCCESS] == 4
    assert state.target.credential.reloads["changed"] == 3
