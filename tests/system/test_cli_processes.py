"""The command line as real processes: `monitor demo`, `monitor run` against the demo's
simulator, and `monitor check-config` (`monitor usage` runs in-process in
`tests/app/test_cli_usage.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.simulator.demo import ACME, GLOBEX
from tests.conftest import StartMonitor
from tests.support.config import TEST_ENVIRON, write_config
from tests.support.net import free_port, get
from tests.support.process import Check, assert_clean_exit, status_200
from tests.support.upstream import TOKEN_A


def up_for(org: str) -> Check:
    return lambda status, body: status == 200 and f'claude_usage_up{{org="{org}"' in body


def test_demo_serves_metrics_and_stops_on_sigterm(
    tmp_path: Path, start_monitor: StartMonitor
) -> None:
    port, sim_port = free_port(), free_port()
    demo = start_monitor(["demo", "--port", str(port), "--simulator-port", str(sim_port)])
    base = f"http://127.0.0.1:{port}"
    health = demo.wait_until(f"{base}/healthz", status_200)
    assert json.loads(health)["status"] == "ok"
    metrics = demo.wait_until(f"{base}/metrics", up_for("acme"))
    assert "claude_usage_utilization_ratio{" in metrics
    assert 'claude_monitor_build_info{version="' in metrics
    status, _ = get(f"http://127.0.0.1:{sim_port}/_simulator/state")
    assert status == 200

    # a second daemon, `monitor run`, against the demo's simulator
    run_port = free_port()
    config = write_config(
        tmp_path / "run.toml",
        f"http://127.0.0.1:{sim_port}",
        [
            {"uuid": ACME.uuid, "name": "acme", "token_env": "RUN_TOKEN_ACME"},
            {"uuid": GLOBEX.uuid, "name": "globex", "token_env": "RUN_TOKEN_GLOBEX"},
        ],
        poll={"interval_seconds": 1, "max_interval_seconds": 2},
    )
    run = start_monitor(
        ["run", "--config", str(config), "--port", str(run_port), "--log-format", "json"],
        env={"RUN_TOKEN_ACME": ACME.token, "RUN_TOKEN_GLOBEX": GLOBEX.token},
    )
    run_base = f"http://127.0.0.1:{run_port}"
    run.wait_until(f"{run_base}/readyz", status_200)
    metrics = run.wait_until(f"{run_base}/metrics", up_for("globex"))
    assert 'claude_usage_up{org="acme",org_uuid="' + ACME.uuid + '"} 1.0' in metrics
    code, _, err = run.stop()
    assert_clean_exit(code, err)
    entries = [json.loads(line) for line in err.splitlines()]  # --log-format json
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert any("listening on" in message for message in messages), messages
    assert messages[-1] == "stopping"
    assert ACME.token not in err
    assert GLOBEX.token not in err

    code, out, err = demo.stop()
    assert_clean_exit(code, err)
    assert f"{base}/metrics" in out


def test_check_config_as_a_subprocess(tmp_path: Path, start_monitor: StartMonitor) -> None:
    good = write_config(
        tmp_path / "config.toml",
        "https://api.anthropic.com",
        accounts=[{"name": "me", "token_env": "TOKEN_C"}],
    )
    ok = start_monitor(["check-config", "--config", str(good)], TEST_ENVIRON)
    code, out, err = ok.wait(timeout=60)
    assert code == 0, err
    assert "OK" in out
    assert "******** " in out
    for secret in TEST_ENVIRON.values():
        assert secret not in out + err

    bad = tmp_path / "bad.toml"
    bad.write_text('[[orgs]]\nuuid = "nope"\ntoken_env = "TOKEN_A"\n')
    refused = start_monitor(["check-config"], {**TEST_ENVIRON, "MONITOR_CONFIG": str(bad)})
    code, _, err = refused.wait(timeout=60)
    assert code == 2
    assert "orgs[0].uuid: not a UUID (got 'nope')" in err
    assert "Traceback" not in err
    assert TOKEN_A not in err
