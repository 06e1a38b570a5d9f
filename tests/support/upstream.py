"""The upstream the tests talk to: the simulator with three orgs, served over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.config import parse_config
from monitor.schema import Config
from monitor.simulator import Simulator, simulator_app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "upstream"

ORG_A = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
ORG_B = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
ORG_C = "3c9e1f52-8a47-4d6b-b1e0-7f2a9c4d5e63"
TOKEN_A = "test-token-a-0123456789abcdef"
TOKEN_B = "test-token-b-0123456789abcdef"
TOKEN_C = "test-token-c-0123456789abcdef"
# A secret the credential tests read from files and commands.
ROTATING_TOKEN = "test-rotating-token-0123456789abcdef"
# Every secret a test hands out, so tests can assert none of them leaks anywhere (the
# tokens the simulator issues are found by their prefix).
ALL_TEST_SECRETS = (TOKEN_A, TOKEN_B, TOKEN_C, ROTATING_TOKEN)
# The per-org usage series of the README's metrics table, in the order monitor renders them.
USAGE_SERIES = (
    "claude_usage_utilization_ratio",
    "claude_usage_resets_at_timestamp_seconds",
    "claude_usage_extra_enabled",
    "claude_usage_extra_monthly_limit_credits",
    "claude_usage_extra_used_credits",
    "claude_usage_window_length_seconds",
    "claude_usage_up",
    "claude_usage_last_success_timestamp_seconds",
    "claude_usage_poll_duration_seconds",
    "claude_usage_polls_total",
    "claude_usage_next_poll_timestamp_seconds",
)


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


def make_config(
    base_url: str,
    orgs: list[dict[str, Any]] | None = None,
    *,
    environ: dict[str, str] | None = None,
    **sections: Any,
) -> Config:
    """A validated Config whose upstream is `base_url`. Orgs default to A and B."""
    env = {"TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "TOKEN_C": TOKEN_C, **(environ or {})}
    if orgs is None:
        orgs = [
            {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
            {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
        ]
    upstream = {"base_url": base_url, "timeout_seconds": 2, **sections.pop("upstream", {})}
    poll = {"interval_seconds": 1, "max_interval_seconds": 5, **sections.pop("poll", {})}
    document = {"upstream": upstream, "poll": poll, "orgs": orgs, **sections}
    return parse_config(document, environ=env, source="test")


@dataclass
class Upstream:
    """A simulator and the test server that serves it."""

    sim: Simulator
    server: TestServer

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


class ThreadedSimulator:
    """A simulator served from its own thread and loop, for code under test that runs its
    own `asyncio.run` (the command line) or for a process that needs an upstream."""

    def __init__(self, sim: Simulator | None = None) -> None:
        self.sim = sim if sim is not None else standard_simulator()
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedSimulator:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(simulator_app(self.sim), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def call(self, action: Callable[[], object]) -> None:
        """Run `action` on the simulator's own loop (its state is not thread-safe)."""

        async def run() -> None:
            action()

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
            future.result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
