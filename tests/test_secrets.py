"""Secrets hygiene: a `token_file` readable by group or others is warned about at start, by
`monitor check-config` and `monitor run`; a private (0600) one is not. (Every test's logs
are also scanned for every test token by the autouse fixture in conftest.)"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.upstream import ORG_A, TOKEN_A

WARNING = "is readable by group or others (chmod 600 it)"


def _config(tmp_path: Path, mode: int) -> Path:
    secret = tmp_path / "acme.token"
    secret.write_text(TOKEN_A + "\n")
    secret.chmod(mode)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "config.toml"
    config.write_text(
        "\n".join(
            [
                "[server]",
                f"port = {port}",
                "shutdown_grace_seconds = 1",
                "[upstream]",
                # Nothing listens on port 9: polls fail fast, which is fine here.
                'base_url = "http://127.0.0.1:9"',
                "[[orgs]]",
                f'uuid = "{ORG_A}"',
                'token_file = "acme.token"',
            ]
        )
        + "\n"
    )
    return config


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_check_config_warns_about_a_readable_token_file(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    config = _config(tmp_path, mode)
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert (WARNING in output) is warned, output
    if warned:
        assert str(tmp_path / "acme.token") in output  # names the file, so it can be fixed
    assert TOKEN_A not in output


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o600, False)])
async def test_run_logs_the_warning_at_start(tmp_path: Path, mode: int, warned: bool) -> None:
    config = _config(tmp_path, mode)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(config),
        env=dict(os.environ), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    rest = b""
    try:
        for _ in range(200):  # bounded: the start-up takes a handful of lines
            raw = await asyncio.wait_for(process.stderr.readline(), timeout=30)
            if not raw:
                break
            lines.append(raw.decode())
            if "listening on" in lines[-1]:
                break
        assert any("listening on" in line for line in lines), "".join(lines)
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), timeout=15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = "".join(lines) + rest.decode()
    assert process.returncode == 0, log
    found = [line for line in lines if WARNING in line]
    if warned:
        # Logged once, at WARNING, before the daemon says it is listening.
        assert len(found) == 1 and "WARNING" in found[0], log
    else:
        assert not found, log
    assert TOKEN_A not in log
