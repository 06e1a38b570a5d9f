"""Fixtures of the tests that drive a real browser or process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.app import create_app
from monitor.simulator import Fault, simulator_app
from monitor.state import UsageStore
from tests.conftest import MakeServer
from tests.support.clock import FakeClock
from tests.support.config import make_config
from tests.support.devtools import Tab, chromium
from tests.support.jobs import ManualJobs
from tests.support.status_browser import (
    HISTORY,
    LONG_NAME,
    POLL_EVERY,
    SHOWN_AT,
    Served,
    history_simulator,
)
from tests.support.tools import require_tool
from tests.support.upstream import ORG_A, ORG_B, ORG_C, base_url


@pytest.fixture
async def served(aiohttp_server: MakeServer) -> Served:
    """The app over a real port, every org polled every 5 minutes for the three hours up
    to SHOWN_AT, beta failing at its last poll (its last good numbers kept)."""
    clock = FakeClock(SHOWN_AT - HISTORY)
    sim = history_simulator(clock)
    sim.set_extra(ORG_A, used_credits=1234)
    upstream = await aiohttp_server(simulator_app(sim))
    orgs = [
        {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
        {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
        {"uuid": ORG_C, "name": LONG_NAME, "token_env": "TOKEN_C"},
    ]
    store = UsageStore(clock)
    jobs = ManualJobs(clock)
    config = make_config(base_url(upstream), orgs)
    server = await aiohttp_server(create_app(config, store=store, clock=clock, jobs=jobs))
    while clock() < SHOWN_AT:
        if clock() + POLL_EVERY >= SHOWN_AT:
            sim.set_fault(ORG_B, Fault(status=429, retry_after="0"))
        clock.advance(POLL_EVERY)
        await jobs.run_due()  # one poll of each org: their next ones were due in seconds
    assert all(s.last_result is not None for s in store)
    beta = store.get(ORG_B)
    assert beta is not None
    assert not beta.up
    assert beta.last_success is not None
    return Served(str(server.make_url("/")), store)


@pytest.fixture
async def tab(tmp_path: Path) -> AsyncIterator[Tab]:
    binary = require_tool("chromium", "apt-get install chromium")
    async with chromium(binary, tmp_path / "profile") as browser:
        yield await browser.new_tab()
