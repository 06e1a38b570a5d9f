"""A minute of rotating tokens against a real `monitor run` (`pytest -m soak` runs it with
the other long runs): the simulator's tokens live 20 s, a writer renews the credentials
file every 15 s as Claude Code would, every org is polled every second, and
`claude_usage_up` must read 1 at every scrape from the first poll to the last."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.simulator import renew_once
from tests.support.credentials import RENEWED_UUID
from tests.support.metrics import parse_metrics, value
from tests.support.net import free_port, get
from tests.support.process import MonitorProcess, assert_clean_exit
from tests.support.upstream import ORG_A, ORG_B, ThreadedSimulator, standard_simulator

pytestmark = pytest.mark.soak

TOKEN_LIFETIME = 20.0
RENEW_EVERY = 15.0
RUN_SECONDS = 60.0
SCRAPE_EVERY = 1.0


def write_config(path: Path, upstream: str, port: int, credentials: Path) -> None:
    org = f'token_file = "{credentials}"\ntoken_json_key = "claudeAiOauth.accessToken"\n'
    path.write_text(
        f'[server]\nport = {port}\n\n[upstream]\nbase_url = "{upstream}"\ntimeout_seconds = 2\n\n'
        "[poll]\ninterval_seconds = 1\nmax_interval_seconds = 1\n\n"
        f'[[orgs]]\nuuid = "{ORG_A}"\nname = "acme"\n{org}\n'
        f'[[orgs]]\nuuid = "{ORG_B}"\nname = "beta"\n{org}'
    )


def test_up_stays_1_while_the_token_is_renewed_every_15_seconds(
    tmp_path: Path, start_monitor: Callable[..., MonitorProcess]
) -> None:
    sim = standard_simulator()
    sim.add_account(org_uuids=[ORG_A, ORG_B], uuid=RENEWED_UUID, issued_tokens_only=True)
    credentials = tmp_path / ".credentials.json"
    with ThreadedSimulator(sim) as served:
        served.call(lambda: renew_once(sim, RENEWED_UUID, credentials, TOKEN_LIFETIME))
        config = tmp_path / "config.toml"
        port = free_port()
        write_config(config, served.url, port, credentials)
        process = start_monitor(["run", "--config", str(config)])
        metrics = f"http://127.0.0.1:{port}/metrics"
        try:
            process.wait_until(
                metrics, lambda status, body: status == 200 and 'claude_usage_up{org="beta"' in body
            )
            started = last_renewal = time.monotonic()
            renewals = scrapes = 0
            while time.monotonic() - started < RUN_SECONDS:
                if time.monotonic() - last_renewal >= RENEW_EVERY:
                    served.call(lambda: renew_once(sim, RENEWED_UUID, credentials, TOKEN_LIFETIME))
                    last_renewal, renewals = time.monotonic(), renewals + 1
                status, body = get(metrics)
                assert status == 200
                samples = parse_metrics(body)
                for org in ("acme", "beta"):
                    up = value(samples, "claude_usage_up", org=org)
                    assert up == 1.0, f"{org} went down after {time.monotonic() - started:.0f} s"
                scrapes += 1
                time.sleep(SCRAPE_EVERY)
        finally:
            code, _, err = process.stop(signal.SIGTERM)
    assert_clean_exit(code, err)
    assert renewals >= 3  # the first token lapsed long before the end
    assert scrapes >= RUN_SECONDS / SCRAPE_EVERY / 2
    for org in ("acme", "beta"):
        successes = value(samples, "claude_usage_polls_total", org=org, result="success")
        assert successes is not None and successes >= RUN_SECONDS / 2
        for failed in ("unauthorized", "credential_expired"):
            assert value(samples, "claude_usage_polls_total", org=org, result=failed) == 0
        changed = value(samples, "claude_usage_credential_reloads_total", org=org, result="changed")
        assert changed is not None and changed >= renewals
    print(f"rotation run: {renewals} renewals, {scrapes} scrapes, up 1 at every one")
