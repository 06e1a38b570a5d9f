"""Published usage clients from PyPI, pointed at monitor, against the simulator: what they
print is the simulator's numbers, relayed by the proxy.

Neither client has a setting for its upstream, so each is pointed at monitor the only
way it allows: its module constant, patched in-process (`ai_limit_checker.claude.
USAGE_URL`, `claude_usage.api.BASE_URL`). They use urllib, which blocks, so they run in a
thread while the app serves on this loop. Versions are pinned in the `test` extra.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import ai_limit_checker.claude
import ai_limit_checker.cli
import claude_usage.api
import claude_usage.printer
import pytest

from monitor.simulator import Simulator, simulator_app
from tests.conftest import Client, MakeClient, MakeServer
from tests.support.config import make_config
from tests.support.metrics import scrape, value
from tests.support.upstream import ORG_B, ORG_C, TOKEN_C, Upstream, standard_simulator

SESSION_KEY = "sk-ant-sid01-published-client-test-key"
FAR_FUTURE_MS = 4102444800000  # 2100-01-01: the token never looks expired to the client


@pytest.fixture
async def upstream(aiohttp_server: MakeServer) -> Upstream:
    """The standard simulator, clock stopped (the numbers do not move between the read
    and the assertion), with a claude.ai session key for org B."""
    sim = standard_simulator()
    now = sim.clock()
    sim.clock = lambda: now
    sim.add_account(session_key=SESSION_KEY, org_uuids=[ORG_B])
    # Numbers no client would print by chance (the sample's for org C).
    sim.set_utilization(ORG_C, "five_hour", 37.0)
    sim.set_utilization(ORG_C, "seven_day", 12.0)
    sim.set_utilization(ORG_B, "five_hour", 64.5)
    sim.set_utilization(ORG_B, "seven_day", 23.4)
    sim.set_extra(ORG_B, used_credits=4321)
    return Upstream(sim, await aiohttp_server(simulator_app(sim)))


@pytest.fixture(autouse=True)
def _direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours proxy variables; these clients must dial 127.0.0.1 themselves."""
    monkeypatch.setenv("no_proxy", "*")


def url_of(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


def percent(sim: Simulator, org_uuid: str, window: str) -> float:
    reading = sim.usage(org_uuid)[window]
    assert isinstance(reading, dict)
    utilization = reading["utilization"]
    assert isinstance(utilization, int | float)
    return round(float(utilization), 1)


def claude_code_home(home: Path, token: str) -> None:
    """What Claude Code leaves on a Linux machine: its OAuth token, no refresh token (so
    the client never tries to renew it against the real upstream)."""
    (home / ".claude").mkdir()
    credentials = {"claudeAiOauth": {"accessToken": token, "expiresAt": FAR_FUTURE_MS}}
    (home / ".claude" / ".credentials.json").write_text(json.dumps(credentials))


async def test_ai_limit_checker_reads_oauth_usage_through_monitor(
    upstream: Upstream,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`aichecker --claude` (ai-limit-checker): a rate-limit CLI that reads Claude Code's
    credentials file and calls `/api/oauth/usage`. Run twice with the cache on: the
    second run is answered by monitor, the upstream sees one read."""
    config = make_config(upstream.url, proxy={"usage_cache_seconds": 30})
    client = await make_client(config, poll=False)
    claude_code_home(tmp_path, TOKEN_C)
    monkeypatch.setenv("HOME", str(tmp_path))
    # Its result cache is placed at import, under the real home: keep it in the test's.
    cache_dir = tmp_path / ".cache" / "ai-limit-checker"
    monkeypatch.setattr(ai_limit_checker.cli, "CACHE_DIR", cache_dir)
    monkeypatch.setattr(ai_limit_checker.cli, "CACHE_FILE", cache_dir / "usage.json")
    monkeypatch.setattr(ai_limit_checker.claude, "USAGE_URL", f"{url_of(client)}/api/oauth/usage")
    for _ in range(2):
        status = await asyncio.to_thread(ai_limit_checker.cli.main, ["--claude", "--no-cache"])
        assert status == 0
    printed = capsys.readouterr().out
    assert printed.count("5h Window:  37.0% used (63.0% left)") == 2, printed
    for label, window in (("5h Window:", "five_hour"), ("7d Window:", "seven_day")):
        used = percent(upstream.sim, ORG_C, window)
        line = f"{label}  {used:.1f}% used ({round(100.0 - used, 1):.1f}% left)"
        assert printed.count(line) == 2, printed
    (seen,) = upstream.sim.requests
    assert seen.path == "/api/oauth/usage" and seen.org_uuid == ORG_C
    assert seen.header("anthropic-beta") == "oauth-2025-04-20"
    assert (seen.header("User-Agent") or "").startswith("claude-code/")  # the client's own
    _, samples = await scrape(client)
    assert value(samples, "claude_proxy_requests_total", endpoint="oauth_usage") == 2
    assert value(samples, "claude_proxy_cache_requests_total", result="hit") == 1


async def test_claude_seeker_reads_the_org_routes_through_monitor(
    upstream: Upstream,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """claude-seeker (`cseek`): with a claude.ai session key it lists the organizations,
    reads the account, then the chosen org's usage, and prints its windows."""
    client = await make_client(make_config(upstream.url), poll=False)
    monkeypatch.setattr(claude_usage.api, "BASE_URL", f"{url_of(client)}/api")
    usage = await asyncio.to_thread(claude_usage.api.fetch_usage, SESSION_KEY)
    claude_usage.printer.print_account_usage("1", usage, use_color=False)
    printed = capsys.readouterr().out
    assert "(beta)" in printed  # org B's name, from /api/organizations
    assert " 64.5%" in printed and " 23.4%" in printed and "spend $43.21" in printed
    for label, window in (("5h session ", "five_hour"), ("7d weekly  ", "seven_day")):
        assert f"{label}  [" in printed
        assert f"{percent(upstream.sim, ORG_B, window):5.1f}%" in printed
    extra = upstream.sim.usage(ORG_B)["extra_usage"]
    assert isinstance(extra, dict)
    spend = f"spend ${extra['used_credits'] / 100:.2f} / limit ${extra['monthly_limit'] / 100:.2f}"  # type: ignore[operator]
    assert spend in printed
    paths = [request.path for request in upstream.sim.requests]
    assert paths == ["/api/organizations", "/api/account", f"/api/organizations/{ORG_B}/usage"]
    assert all(r.header("Cookie") == f"sessionKey={SESSION_KEY}" for r in upstream.sim.requests)
    _, samples = await scrape(client)
    for endpoint in ("organizations", "account", "usage"):
        assert value(samples, "claude_proxy_requests_total", endpoint=endpoint, code="200") == 1
    assert SESSION_KEY not in caplog.text
