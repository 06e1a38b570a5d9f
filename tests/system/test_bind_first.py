"""The listening socket comes first: when the port is taken, `monitor run` exits at once
naming the address, and has sent nothing upstream."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from monitor.simulator import Simulator
from tests.support.paths import ROOT
from tests.support.upstream import ORG_A, TOKEN_A, ThreadedSimulator, standard_simulator


def test_a_taken_port_ends_the_daemon_before_any_poll(tmp_path: Path) -> None:
    sim: Simulator = standard_simulator()
    with ThreadedSimulator(sim) as served, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(
            f'[server]\nport = {port}\n[upstream]\nbase_url = "{served.url}"\n'
            f'[[orgs]]\nuuid = "{ORG_A}"\ntoken_env = "TOKEN_A"\n'
            '[[accounts]]\ntoken_env = "TOKEN_A"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={"TOKEN_A": TOKEN_A, "PATH": "/usr/bin:/bin"},
            check=False,
        )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"monitor: cannot listen on 127.0.0.1:{port} (monitor): Address already in use"
    ]
    assert list(sim.requests) == []  # no poll, no discovery: nothing was sent
