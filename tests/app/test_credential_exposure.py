"""What a rotating credential shows: /metrics, the status page, `check-config` and
`monitor usage`; session cookies the upstream rotates; and what never crosses between
the daemon's credentials and the proxy's callers."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.app import Parts
from monitor.cli import main, poll_every_org_once
from monitor.report import usage_report
from monitor.state import PollResult
from tests.conftest import Client, MakeClient, MakeServer
from tests.support.config import make_config
from tests.support.credentials import Renewing, renewing_upstream
from tests.support.jobs import ManualJobs
from tests.support.metrics import metric_lines, parse_metrics, value
from tests.support.tools import promtool_check_metrics
from tests.support.upstream import ORG_A, ORG_B, ROTATING_TOKEN, TOKEN_A, TOKEN_B

MakeParts = Callable[..., Awaitable[Parts]]


@pytest.fixture
async def renewing(aiohttp_server: MakeServer, tmp_path: Path) -> Renewing:
    return await renewing_upstream(aiohttp_server, tmp_path)


@pytest.fixture
async def running(renewing: Renewing, make_client: MakeClient) -> tuple[Client, ManualJobs]:
    """The app polling org A from the credentials file, with an account on it too."""
    account = {"name": "team", "token_file": str(renewing.path)}
    account["token_json_key"] = "claudeAiOauth.accessToken"
    config = make_config(renewing.upstream.url, [renewing.org()], accounts=[account])
    jobs = ManualJobs(renewing.clock)
    client = await make_client(config, clock=renewing.clock, jobs=jobs)
    await jobs.run_due()
    return client, jobs


async def test_metrics_show_the_expiry_and_the_re_reads(
    renewing: Renewing, running: tuple[Client, ManualJobs]
) -> None:
    client, jobs = running
    expires = renewing.clock() + 3600  # the file's token, renewed at setup
    text = await (await client.get("/metrics")).text()
    samples = parse_metrics(text)
    name = "claude_usage_credential_expires_timestamp_seconds"
    assert value(samples, name, org="acme", org_uuid=ORG_A) == pytest.approx(expires, abs=1)
    assert value(samples, name, account="team") == pytest.approx(expires, abs=1)
    # org B is discovered through the account: its credential is the account's
    assert value(samples, name, org_uuid=ORG_B) == pytest.approx(expires, abs=1)
    reloads = "claude_usage_credential_reloads_total"
    assert value(samples, reloads, org="acme", result="changed") == 0
    assert value(samples, reloads, account="team", result="unchanged") == 0
    assert value(samples, reloads, org_uuid=ORG_B, result="changed") is None  # counted once

    renewing.renew(lifetime=7200)
    await jobs.advance(5)  # the next polls of A and B (and their cheap stats)
    samples = parse_metrics(await (await client.get("/metrics")).text())
    later = renewing.clock() + 7200 - 5
    assert value(samples, name, org="acme", org_uuid=ORG_A) == pytest.approx(later, abs=1)
    assert value(samples, reloads, org="acme", result="changed") == 1
    assert value(samples, reloads, account="team", result="changed") == 1
    assert "credential_expired" in "".join(metric_lines(text, "claude_usage_polls_total"))


@pytest.mark.tool
async def test_the_credential_series_pass_promtool(
    running: tuple[Client, ManualJobs],
) -> None:
    client, _ = running
    text = await (await client.get("/metrics")).text()
    checked = await promtool_check_metrics(text)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


async def test_the_status_page_says_when_the_token_expires(
    renewing: Renewing, running: tuple[Client, ManualJobs]
) -> None:
    client, jobs = running
    page = await (await client.get("/")).text()
    # An hour, less the milliseconds the file's epoch-ms expiry rounds away.
    assert re.search(r"Token expires in (1h 00m|59m 59s), from file\+json\.", page)
    renewing.clock.advance(3600 - 5)
    await jobs.advance(10)  # past the expiry, nothing renewed it
    page = await (await client.get("/")).text()
    assert '<p class="credential expired" role="status"><strong>Token expired' in page
    assert "nothing is sent with it" in page
    assert "failed: credential_expired" in page


def test_check_config_shows_the_source_kind_and_expiry(
    renewing: Renewing, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[orgs]]\nuuid = "{ORG_A}"\nname = "acme"\ntoken_file = "{renewing.path}"\n'
        'token_json_key = "claudeAiOauth.accessToken"\n'
    )
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    where = f"file+json {renewing.path}, key claudeAiOauth.accessToken"
    assert f"acme  {ORG_A}  bearer ******** (" in out
    assert f"chars, {where}; expires in " in out
    assert "sim-issued-" not in out


async def test_monitor_usage_shows_the_credential_of_each_org(renewing: Renewing) -> None:
    config = make_config(renewing.upstream.url, [renewing.org()])
    states = await poll_every_org_once(config)
    (org,) = usage_report(states)["orgs"]
    assert org["result"] == "success"
    credential = org["credential"]
    assert credential["source"] == "file+json"
    assert credential["where"] == f"{renewing.path}, key claudeAiOauth.accessToken"
    assert credential["expires_at"].endswith("Z")


class CookieUpstream:
    """An upstream that can hand out a new `sessionKey` cookie (as claude.ai does) and
    records the cookies it receives; it also sets a Cloudflare-style cookie every time."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.rotate_to: str | None = None

    async def usage(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("Cookie", ""))
        response = web.json_response({"five_hour": {"utilization": 10.0, "resets_at": None}})
        response.set_cookie("__cf_bm", "set-by-the-upstream")
        if self.rotate_to is not None:
            response.set_cookie("sessionKey", self.rotate_to, secure=False, httponly=True)
            self.rotate_to = None
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/organizations/{org_uuid}/usage", self.usage)
        return app


async def test_a_session_key_the_upstream_rotates_is_used_and_a_file_change_wins(
    aiohttp_server: MakeServer, make_parts: MakeParts, tmp_path: Path
) -> None:
    fake = CookieUpstream()
    server = await aiohttp_server(fake.app())
    key_file = tmp_path / "session"
    key_file.write_text(TOKEN_A)
    org = {"uuid": ORG_A, "name": "acme", "session_key_file": str(key_file)}
    # "localhost", not an IP: a cookie jar would keep cookies for it (none is used).
    parts = await make_parts(make_config(f"http://localhost:{server.port}", [org]))
    parts.poller.apply_targets()
    fake.rotate_to = ROTATING_TOKEN
    for _ in range(2):
        assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    key_file.write_text(TOKEN_B)
    assert await parts.poller.poll(ORG_A) is PollResult.SUCCESS
    assert fake.seen == [
        f"sessionKey={TOKEN_A}",
        f"sessionKey={ROTATING_TOKEN}",  # the rotated key, and only it: no stored cookies
        f"sessionKey={TOKEN_B}",  # the file changed: its key wins over the rotated one
    ]
    state = parts.store.get(ORG_A)
    assert state is not None
    assert state.target.credential.reloads["changed"] == 2


async def test_no_cookie_crosses_from_one_caller_or_a_poll_to_another_caller(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    fake = CookieUpstream()
    server = await aiohttp_server(fake.app())
    client = await make_client(make_config(f"http://localhost:{server.port}"), poll=False)
    url = client.make_url(f"/api/organizations/{ORG_A}/usage")
    # Two callers, each with no cookie store of its own: whatever reaches the upstream
    # beyond their own cookie would have been added by monitor.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as callers:
        for caller in ("sessionKey=first-caller", "sessionKey=second-caller"):
            async with callers.get(url, headers={"Cookie": caller}) as response:
                assert response.status == 200
                assert response.headers.getall("Set-Cookie")  # relayed as it came
    assert fake.seen == ["sessionKey=first-caller", "sessionKey=second-caller"]


async def test_the_proxy_uses_the_callers_credential_whatever_the_daemon_holds(
    renewing: Renewing, running: tuple[Client, ManualJobs]
) -> None:
    client, _ = running
    renewing.renew()
    response = await client.get(
        f"/api/organizations/{ORG_A}/usage", headers={"Authorization": f"Bearer {TOKEN_A}"}
    )
    assert response.status == 200
    assert renewing.bearers_seen()[-1] == f"Bearer {TOKEN_A}"
