"""Fixtures shared by every test: the secret scan, logging hygiene, the simulated upstream,
a test-driven clock and scheduler, and factories that tear down what they build."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import coverage
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.app import Parts, create_app, wire
from monitor.schema import Config
from monitor.simulator import ISSUED_TOKEN_PREFIX, Simulator, simulator_app
from monitor.state import UsageStore
from tests.support.clock import FakeClock
from tests.support.jobs import ManualJobs
from tests.support.process import PYTHON_M_MONITOR, MonitorProcess
from tests.support.simulator import T0, four_shapes
from tests.support.upstream import ALL_TEST_SECRETS, Upstream, standard_simulator

Client = TestClient[web.Request, web.Application]
ISSUED_TOKEN = re.compile(re.escape(ISSUED_TOKEN_PREFIX) + "[0-9a-f]{8,}")
MakeClient = Callable[..., Awaitable[Client]]
MakeServer = Callable[..., Awaitable[TestServer]]
MakeParts = Callable[..., Awaitable[Parts]]
MakeProxy = Callable[..., Awaitable[Client]]
StartMonitor = Callable[..., MonitorProcess]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """`@pytest.mark.untraced`: run the test with coverage stopped (when it runs at all).
    (pytest-cov's own `no_cover` fails under `--no-cov`.)"""
    running = coverage.Coverage.current() if item.get_closest_marker("untraced") else None
    if running is None:
        return (yield)
    running.stop()
    try:
        return (yield)
    finally:
        running.start()


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
def clock() -> FakeClock:
    """The test's clock: the simulator's, and the app's under `driven`."""
    return FakeClock()


@pytest.fixture
def jobs(clock: FakeClock) -> ManualJobs:
    """A scheduler that runs polls only when the test calls `jobs.advance(seconds)`."""
    return ManualJobs(clock)


@pytest.fixture
async def upstream(aiohttp_server: MakeServer, clock: FakeClock) -> Upstream:
    """The standard simulator (orgs A, B, C) served on 127.0.0.1. Its time is the test's
    clock: it stands still unless the test (or `jobs.advance`) moves it."""
    sim = standard_simulator(clock)
    server = await aiohttp_server(simulator_app(sim))
    return Upstream(sim, server)


@pytest.fixture
def make_client(aiohttp_client: MakeClient) -> MakeClient:
    """`await make_client(config, **create_app options)`: the app over real HTTP, closed
    (upstream session and scheduler too) when the test ends."""

    async def make(config: Config, **options: Any) -> Client:
        return await aiohttp_client(create_app(config, **options))

    return make


@pytest.fixture
def make_proxy(make_client: MakeClient) -> MakeProxy:
    """`await make_proxy(config, store=None)`: the app without polling, so the upstream
    sees only what the test sends through the proxy."""

    async def make(config: Config, store: UsageStore | None = None) -> Client:
        return await make_client(config, poll=False, store=store)

    return make


@pytest.fixture
def driven(make_client: MakeClient, clock: FakeClock, jobs: ManualJobs) -> MakeClient:
    """`await driven(config)`: the app with the test's clock and scheduler; nothing is
    polled until the test calls `await jobs.advance(...)` or `jobs.run_due()`."""

    async def make(config: Config, **options: Any) -> Client:
        return await make_client(config, clock=clock, jobs=jobs, **options)

    return make


@pytest.fixture
async def make_parts() -> AsyncIterator[MakeParts]:
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


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def start_monitor() -> Iterator[StartMonitor]:
    """`start_monitor(args, env)`: `python -m monitor ARGS` as a real process, killed (if
    it still runs) when the test ends."""
    started: list[MonitorProcess] = []

    def start(
        args: list[str],
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = PYTHON_M_MONITOR,
    ) -> MonitorProcess:
        process = MonitorProcess(args, env, launcher)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def sim_clock() -> FakeClock:
    """The simulator tests' clock, at T0 (a round hour, so reset times read well)."""
    return FakeClock(T0)


@pytest.fixture
def sim(sim_clock: FakeClock) -> Simulator:
    """The simulator tests' simulator: one org of each payload shape (`four_shapes`)."""
    return four_shapes(sim_clock)
