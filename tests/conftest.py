"""Fixtures shared by every test: the secret scan, logging hygiene, the simulated upstream,
a test-driven clock and scheduler, and factories that tear down what they build."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.app import Parts, create_app, wire
from monitor.schema import Config
from monitor.simulator import ISSUED_TOKEN_PREFIX, simulator_app
from tests.support.clock import FakeClock
from tests.support.jobs import ManualJobs
from tests.support.upstream import ALL_TEST_SECRETS, Upstream, standard_simulator

Client = TestClient[web.Request, web.Application]
ISSUED_TOKEN = re.compile(re.escape(ISSUED_TOKEN_PREFIX) + "[0-9a-f]{8,}")
MakeClient = Callable[..., Awaitable[Client]]
MakeServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test's logs, at DEBUG and from every logger, are scanned for every test token."""
    caplog.set_level(logging.DEBUG)
    yield
    text = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    leaked = [secret for secret in ALL_TEST_SECRETS if secret in text]
    leaked += ISSUED_TOKEN.findall(text)  # any token the simulator issued
    assert not leaked, f"a test credential reached the logs: {len(leaked)} of them"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that run `monitor.cli.main` in-process configure the root logger; undo that."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def upstream(aiohttp_server: MakeServer) -> Upstream:
    """The standard simulator (orgs A, B, C) served on 127.0.0.1."""
    sim = standard_simulator()
    server = await aiohttp_server(simulator_app(sim))
    return Upstream(sim, server)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def jobs(clock: FakeClock) -> ManualJobs:
    """A scheduler that runs polls only when the test calls `jobs.advance(seconds)`."""
    return ManualJobs(clock)


@pytest.fixture
def make_client(aiohttp_client: MakeClient) -> Callable[..., Awaitable[Client]]:
    """`await make_client(config, **create_app options)`: the app over real HTTP, closed
    (upstream session and scheduler too) when the test ends."""

    async def make(config: Config, **options: Any) -> Client:
        return await aiohttp_client(create_app(config, **options))

    return make


@pytest.fixture
def driven(
    make_client: Callable[..., Awaitable[Client]], clock: FakeClock, jobs: ManualJobs
) -> Callable[..., Awaitable[Client]]:
    """`await driven(config)`: the app with the test's clock and scheduler; nothing is
    polled until the test calls `await jobs.advance(...)` or `jobs.run_due()`."""

    async def make(config: Config, **options: Any) -> Client:
        return await make_client(config, clock=clock, jobs=jobs, **options)

    return make


@pytest.fixture
async def make_parts() -> AsyncIterator[Callable[..., Awaitable[Parts]]]:
    """`await make_parts(config, **wire options)`: the poller, discovery and friends with
    an open upstream session, closed when the test ends. Nothing is scheduled unless the
    test starts `parts.jobs` and the poller."""
    opened: list[Parts] = []

    async def make(config: Config, **options: Any) -> Parts:
        parts = wire(config, **options)
        await parts.upstream.open()
        opened.append(parts)
        return parts

    yield make
    for parts in opened:
        await parts.upstream.close()
