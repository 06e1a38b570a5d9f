"""Run monitor as users do (`python -m monitor run --config FILE`) in its own process.

The config is generated: N orgs, each with its own token in its own environment variable
(orgs sharing a credential are polled one at a time by design, so sharing would measure
that lock, not the poller). The log level is monitor's default (INFO: the access log on,
written to the process's log file) unless a spec says otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.procs import HOST, Processes, free_port, wait_http
from bench.upstream import org_uuid, poll_token


@dataclass(frozen=True)
class DaemonSpec:
    orgs: int
    upstream_url: str
    concurrency: int = 100
    interval_seconds: float = 300.0
    # `[server] event_loop`; None leaves the key out (monitor's default).
    event_loop: str | None = None
    log_level: str | None = None  # None: monitor's default


def write_config(spec: DaemonSpec, port: int, path: Path) -> dict[str, str]:
    """Write the TOML config; return the environment holding the tokens."""
    lines = [
        "[server]",
        f'host = "{HOST}"',
        f"port = {port}",
        "shutdown_grace_seconds = 1",
        *([f'event_loop = "{spec.event_loop}"'] if spec.event_loop else []),
        "",
        "[upstream]",
        f'base_url = "{spec.upstream_url}"',
        "timeout_seconds = 15",
        # Twice the poll concurrency, as monitor advises (else polls may take the proxy's share).
        f"max_connections = {max(100, 2 * spec.concurrency)}",
        "",
        "[poll]",
        f"interval_seconds = {spec.interval_seconds}",
        f"max_interval_seconds = {spec.interval_seconds}",
        f"concurrency = {spec.concurrency}",
        "",
    ]
    env: dict[str, str] = {}
    for index in range(spec.orgs):
        variable = f"B{index:06d}"  # short, as the token (see `poll_token`)
        env[variable] = poll_token(index)
        lines += [
            "[[orgs]]",
            f'uuid = "{org_uuid(index)}"',
            f'name = "org-{index:06d}"',
            f'token_env = "{variable}"',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return env


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


def start_daemon(procs: Processes, spec: DaemonSpec, workdir: Path, name: str) -> Daemon:
    port = free_port()
    config = workdir / f"{name}.toml"
    tokens = write_config(spec, port, config)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MONITOR_")}
    env.update(tokens)
    argv = [sys.executable, "-m", "monitor", "run", "--config", str(config)]
    if spec.log_level is not None:
        argv += ["--log-level", spec.log_level]
    process = procs.start(name, argv, env)
    return Daemon(process, f"http://{HOST}:{port}")


async def wait_started(daemon: Daemon, within: float) -> float:
    """Seconds until the daemon answers /healthz."""
    return await wait_http(daemon.url + "/healthz", daemon.process, within=within)


async def fetch(url: str, *, headers: dict[str, str] | None = None, within: float = 60) -> bytes:
    # auto_decompress=False: the body as it came over the wire (gzip stays gzip).
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=within)) as resp,
    ):
        body = await resp.read()
        resp.raise_for_status()
        return body
