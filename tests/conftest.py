"""Shared fixtures: a simulator served over real HTTP, configs pointing at it, tool lookup."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from monitor.config import Config, parse_config
from monitor.simulator import Simulator

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"

ORG_A = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
ORG_B = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
ORG_C = "3c9e1f52-8a47-4d6b-b1e0-7f2a9c4d5e63"
TOKEN_A = "test-token-a-0123456789abcdef"
TOKEN_B = "test-token-b-0123456789abcdef"
TOKEN_C = "test-token-c-0123456789abcdef"
# SPEC section 4: the per-org usage series, in the order monitor renders them.
SPEC_USAGE_SERIES = (
    "claude_usage_utilization_ratio",
    "claude_usage_resets_at_timestamp_seconds",
    "claude_usage_extra_enabled",
    "claude_usage_extra_monthly_limit_credits",
    "claude_usage_extra_used_credits",
    "claude_usage_up",
    "claude_usage_last_success_timestamp_seconds",
    "claude_usage_poll_duration_seconds",
    "claude_usage_polls_total",
    "claude_usage_next_poll_timestamp_seconds",
)
# Every secret a test hands out, so tests can assert none of them leaks anywhere.
ALL_TEST_SECRETS = (TOKEN_A, TOKEN_B, TOKEN_C)


@pytest.fixture(autouse=True)
def _no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test's logs, at DEBUG and from every logger, are scanned for every test token."""
    caplog.set_level(logging.DEBUG)
    yield
    text = caplog.text + "\n".join(str(record.__dict__) for record in caplog.records)
    leaked = [secret for secret in ALL_TEST_SECRETS if secret in text]
    assert not leaked, f"a test credential reached the logs: {len(leaked)} of them"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that run `monitor.cli.main` in-process configure the root logger; undo that."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def require_tool(name: str, hint: str) -> str:
    """Path of an external tool. Missing: skip locally, fail in CI (MONITOR_REQUIRE_TOOLS=1)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: {hint}"
        if os.environ.get("MONITOR_REQUIRE_TOOLS") == "1":
            pytest.fail(message + " (MONITOR_REQUIRE_TOOLS=1: tools are required here)")
        pytest.skip(message)
    return path


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


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
    sim: Simulator
    server: TestServer

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


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


@pytest.fixture
async def upstream(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> Upstream:
    sim = standard_simulator()
    server = await aiohttp_server(sim.create_app())
    return Upstream(sim, server)
