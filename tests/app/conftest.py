"""Fixtures of the tests that run an app in-process over real sockets."""

from __future__ import annotations

import pytest

from monitor.simulator import Simulator, simulator_app
from tests.conftest import Client, MakeClient


@pytest.fixture
async def sim_client(sim: Simulator, aiohttp_client: MakeClient) -> Client:
    """The four-shape simulator (`sim`) over real HTTP."""
    return await aiohttp_client(simulator_app(sim))
