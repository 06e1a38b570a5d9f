"""Secrets hygiene: a `token_file` readable by group or others is warned about at start, by
`monitor check-config` and `monitor run`; a private (0600) one is not. (Every test's logs
are also scanned for every test token by the autouse fixture in conftest.)"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import StartMonitor
from tests.support.config import write_config
from tests.support.net import free_port
from tests.support.upstream import ORG_A, TOKEN_A

WARNING = "is readable by group or others (chmod 600 it)"


def _config(tmp_path: Path, mode: int) -> Path:
    secret = tmp_path / "acme.token"
    secret.write_text(TOKEN_A + "\n")
    secret.chmod(mode)
    # Nothing listens on port 9: polls fail fast, which is fine here.
    return write_config(
        tmp_path / "config.toml",
        "http://127.0.0.1:9",
        [{"uuid": ORG_A, "token_file": "acme.token"}],
        server={"port": free_port(), "shutdown_grace_seconds": 1},
    )


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_check_config_warns_about_a_readable_token_file(
    tmp_path: Path, start_monitor: StartMonitor, mode: int, warned: bool
) -> None:
    config = _config(tmp_path, mode)
    code, out, err = start_monitor(["check-config", "--config", str(config)]).wait(timeout=60)
    assert code == 0, err
    output = out + err
    assert (WARNING in output) is warned, output
    if warned:
        assert str(tmp_path / "acme.token") in output  # names the file, so it can be fixed
    assert TOKEN_A not in output


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o600, False)])
def test_run_logs_the_warning_at_start(
    tmp_path: Path, start_monitor: StartMonitor, mode: int, warned: bool
) -> None:
    config = _config(tmp_path, mode)
    monitor = start_monitor(["run", "--config", str(config)])
    log_so_far = monitor.wait_for_log("listening on")
    started = log_so_far[: log_so_far.index("listening on")].splitlines()  # before listening
    code, _, log = monitor.stop(signal.SIGTERM, timeout=15)
    assert code == 0, log
    found = [line for line in started if WARNING in line]
    if warned:
        # Logged once, at WARNING, before the daemon says it is listening.
        assert len(found) == 1 and "WARNING" in found[0], log
    else:
        assert not found, log
    assert TOKEN_A not in log
