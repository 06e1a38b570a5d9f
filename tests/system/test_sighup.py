"""SIGHUP to a real `monitor run`: a good file applies, a bad one is refused and logged,
and SIGTERM still ends it with exit 0."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.conftest import StartMonitor
from tests.support.config import ORGS_ABC, write_config
from tests.support.net import free_port
from tests.support.process import Check
from tests.support.upstream import ORG_A, TOKEN_A, TOKEN_B, Upstream


def shows(needle: str, present: bool = True) -> Check:
    return lambda status, body: status == 200 and (needle in body) == present


async def test_run_reloads_on_sighup_and_exits_0_on_sigterm(
    upstream: Upstream, tmp_path: Path, start_monitor: StartMonitor
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    sections = {
        "server": {"port": port, "shutdown_grace_seconds": 5},
        "upstream": {"timeout_seconds": 5},
        "poll": {"interval_seconds": 1, "max_interval_seconds": 2},
    }
    write_config(config, upstream.url, ORGS_ABC[:1], **sections)
    env = {"TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "TOKEN_C": "unused-c"}
    monitor = start_monitor(["run", "--config", str(config)], env)
    metrics = f"http://127.0.0.1:{port}/metrics"

    await monitor.wait_until_async(metrics, shows(f'org_uuid="{ORG_A}"'))
    write_config(config, upstream.url, [ORGS_ABC[1]], **sections)
    monitor.send_signal(signal.SIGHUP)
    text = await monitor.wait_until_async(metrics, shows(f'org_uuid="{ORG_A}"', present=False))
    assert "claude_monitor_config_last_reload_successful 1.0" in text
    await monitor.wait_until_async(metrics, shows('claude_usage_up{org="beta"'))

    config.write_text("[poll]\ninterval_seconds = 'soon'\n")
    monitor.send_signal(signal.SIGHUP)
    await monitor.wait_until_async(
        metrics, shows("claude_monitor_config_last_reload_successful 0.0")
    )
    monitor.send_signal(signal.SIGTERM)
    code, _, log = await monitor.wait_async(within=15)
    assert code == 0, log
    assert "poll.interval_seconds" in log  # the refused reload named its problem
    assert "Traceback" not in log and "Unclosed" not in log
    assert TOKEN_A not in log and TOKEN_B not in log
