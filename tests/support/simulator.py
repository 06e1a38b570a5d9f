"""The simulator's own tests: four orgs, one of each payload shape, at a fixed time."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from monitor.simulator import Simulator
from tests.support.clock import FakeClock
from tests.support.paths import FIXTURES

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, a round hour so resets_at are readable

ACME = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
GLOBEX = "3c9e1f52-8a47-4d6b-b1e0-7f2a9c4d5e63"
INITECH = "b84d2e17-5c3a-4f98-a6e1-0d7c3b9f2a45"
SEAT = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
NOBODY = "00000000-0000-4000-8000-000000000000"
TOKEN = "tok-member"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def four_shapes(clock: FakeClock) -> Simulator:
    """acme (seed shape), globex (2025 OAuth), initech (2026 limits), seat (managed seat);
    TOKEN sees all four, "tok-acme-only" only acme, "tok-old" has expired."""
    sim = Simulator(clock)
    sim.add_org(ACME, "acme", plan="team", shape="seed")
    sim.add_org(GLOBEX, "globex", plan="max", shape="oauth_2025")
    sim.add_org(INITECH, "initech", plan="enterprise", shape="limits_2026")
    sim.add_org(SEAT, "seat", plan="pro", shape="managed_seat")
    sim.add_account(token=TOKEN, session_key="sess-ok", org_uuids=[ACME, GLOBEX, INITECH, SEAT])
    sim.add_account(token="tok-acme-only", org_uuids=[ACME])
    sim.add_account(token="tok-old", org_uuids=[ACME], expired=True)
    return sim


def fixture(name: str) -> Any:
    """A recorded upstream payload, parsed."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


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


async def get_json(client: TestClient[Any, Any], path: str, **kwargs: Any) -> tuple[int, Any]:
    """GET `path` (as TOKEN unless `headers` say otherwise): the status and the JSON body."""
    kwargs.setdefault("headers", BEARER)
    async with client.get(path, **kwargs) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()
