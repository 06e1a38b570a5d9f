"""Credentials for tests that build targets by hand."""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from monitor.credentials import LiveCredential
from monitor.secret_sources import SecretReading, SecretSpec
from monitor.simulator import IssuedToken, renew_once, simulator_app
from tests.support.clock import FakeClock
from tests.support.upstream import ORG_A, ORG_B, Upstream, standard_simulator


def env_credential(
    secret: str = "not-a-real-token", *, expires_at: float | None = None, label: str = "org=test"
) -> LiveCredential:
    """A bearer credential as if read from `$TEST_TOKEN`."""
    spec = SecretSpec(presented="bearer", source="env", field="token_env", env="TEST_TOKEN")
    return LiveCredential(spec, SecretReading(SecretStr(secret), expires_at), label=label)


RENEWED_UUID = "5b2d8e41-9c7a-4f03-b6e5-1a9d3c7f2e84"  # the account of renewed tokens


@dataclass
class Renewing:
    """The upstream, an account whose tokens expire, and a Claude Code credentials file
    holding one of them: what a real deployment reads from `~/.claude/.credentials.json`."""

    upstream: Upstream
    clock: FakeClock
    path: Path
    account: str = RENEWED_UUID

    def renew(self, lifetime: float = 3600.0) -> str:
        """Issue a new token and replace the file atomically, as Claude Code does."""
        return renew_once(self.upstream.sim, self.account, self.path, lifetime).token

    def issue(self, lifetime: float = 3600.0) -> IssuedToken:
        return self.upstream.sim.issue_token(self.account, lifetime)

    def org(self, org_uuid: str = ORG_A, name: str = "acme") -> dict[str, Any]:
        """The `[[orgs]]` table that reads this file."""
        return {
            "uuid": org_uuid,
            "name": name,
            "token_file": str(self.path),
            "token_json_key": "claudeAiOauth.accessToken",
        }

    def bearers_seen(self, org_uuid: str = ORG_A) -> list[str]:
        """The bearer tokens the upstream received for the org, oldest first (compared in
        tests, never printed)."""
        return [r.header("Authorization") or "" for r in self.upstream.sim.requests_for(org_uuid)]


async def renewing_upstream(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> Renewing:
    clock = FakeClock()
    sim = standard_simulator(clock)
    sim.add_account(org_uuids=[ORG_A, ORG_B], uuid=RENEWED_UUID, issued_tokens_only=True)
    server = await aiohttp_server(simulator_app(sim))
    renewing = Renewing(Upstream(sim, server), clock, tmp_path / ".credentials.json")
    renewing.renew()
    return renewing


def token_script(tmp_path: Path, name: str = "token.py") -> Path:
    """A credential command written by the test: it prints the JSON in `answer.json` next
    to it (or, when `mode` says so, hangs or fails), and counts its runs in `runs`."""
    script = tmp_path / name
    script.write_text(
        textwrap.dedent(
            """
            import pathlib, sys, time
            here = pathlib.Path(__file__).parent
            runs = here / "runs"
            runs.write_text(str(int(runs.read_text() or 0) + 1) if runs.exists() else "1")
            mode = (here / "mode").read_text().strip() if (here / "mode").exists() else "ok"
            if mode == "hang":
                time.sleep(60)
            if mode == "fail":
                answer = (here / "answer.json").read_text()
                print("keychain locked; last answer was " + answer, file=sys.stderr)
                sys.exit(1)
            print((here / "answer.json").read_text())
            """
        )
    )
    return script
