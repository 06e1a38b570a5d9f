"""The upstream the tests talk to: the simulator with three orgs, served over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.simulator import Simulator, simulator_app
from tests.support.paths import FIXTURES

T = TypeVar("T")


ORG_A = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
ORG_B = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
ORG_C = "3c9e1f52-8a47-4d6b-b1e0-7f2a9c4d5e63"
TOKEN_A = "test-token-a-0123456789abcdef"
TOKEN_B = "test-token-b-0123456789abcdef"
TOKEN_C = "test-token-c-0123456789abcdef"
AUTH_A = {"Authorization": f"Bearer {TOKEN_A}"}
# A secret the credential tests read from files and commands.
ROTATING_TOKEN = "test-rotating-token-0123456789abcdef"
# Every secret a test hands out, so tests can assert none of them leaks anywhere (the
# tokens the simulator issues are found by their prefix).
ALL_TEST_SECRETS = (TOKEN_A, TOKEN_B, TOKEN_C, ROTATING_TOKEN)


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def standard_simulator(clock: Callable[[], float] | None = None) -> Simulator:
    """Org A (seed shape) for TOKEN_A, org B (2026 shape) for TOKEN_B, org C (2025 OAuth
    shape) for TOKEN_C; TOKEN_A also belongs to org C for discovery tests."""
    sim = Simulator() if clock is None else Simulator(clock)
    sim.add_org(ORG_A, "acme", plan="team", shape="seed")
    sim.add_org(ORG_B, "beta", plan="enterprise", shape="limits_2026")
    sim.add_org(ORG_C, "gamma", plan="max", shape="oauth_2025")
    sim.add_account(token=TOKEN_A, org_uuids=[ORG_A, ORG_C])
    sim.add_account(token=TOKEN_B, org_uuids=[ORG_B])
    sim.add_account(token=TOKEN_C, org_uuids=[ORG_C])
    return sim


@dataclass
class Upstream:
    """A simulator and the test server that serves it."""

    sim: Simulator
    server: TestServer

    @property
    def url(self) -> str:
        return base_url(self.server)


def base_url(server: TestServer) -> str:
    """A test server's address without the trailing slash, as a config's base_url."""
    return str(server.make_url("")).rstrip("/")


class ServedInThread:
    """aiohttp apps served by an event loop of their own, in a background thread: for code
    under test that runs its own `asyncio.run` (the command line), for synchronous tests
    (schemathesis) and for a process that needs an upstream."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def serve(self, make_app: Callable[[], web.Application]) -> str:
        """Build the app (on the loop) and serve it on 127.0.0.1; its base URL."""

        async def start() -> str:
            runner = web.AppRunner(make_app(), access_log=None)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            return f"http://127.0.0.1:{runner.addresses[0][1]}"

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=30)

    def call(self, action: Callable[[], T]) -> T:
        """Run `action` on the loop (the apps' state is not thread-safe); its result."""

        async def run() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for runner in reversed(self._runners):
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class ThreadedSimulator(ServedInThread):
    """The standard simulator (or `sim`) served from a background thread."""

    def __init__(self, sim: Simulator | None = None) -> None:
        super().__init__()
        self.sim = sim if sim is not None else standard_simulator()
        self.url = ""

    def __enter__(self) -> Self:
        super().__enter__()
        self.url = self.serve(lambda: simulator_app(self.sim))
        return self
