"""Graceful shutdown of a real `monitor run`: on SIGTERM it stops accepting, lets in-flight
proxied requests finish for up to `[server] shutdown_grace_seconds`, then exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.upstream import ORG_A, TOKEN_A

PROJECT = "proj_shutdown"
# A body big enough to span several chunks, so "the full body" means something.
BODY = b'{"uuid": "proj_shutdown", "padding": "' + b"x" * 200_000 + b'"}'


@dataclass
class SlowProjects:
    """Usage answers at once (for the polls); a project answers after `delay` seconds."""

    delay: float
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def usage(self, request: web.Request) -> web.Response:
        return web.json_response({"five_hour": {"utilization": 1.0, "resets_at": None}})

    async def project(self, request: web.Request) -> web.Response:
        self.started.set()
        await asyncio.sleep(self.delay)
        return web.Response(body=BODY, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/organizations/{org_uuid}/usage", self.usage)
        app.router.add_get("/api/organizations/{org_uuid}/projects/{project_id}", self.project)
        return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(path: Path, base_url: str, port: int, grace: float) -> None:
    path.write_text(
        "\n".join(
            [
                "[server]",
                f"port = {port}",
                f"shutdown_grace_seconds = {grace}",
                "[upstream]",
                f'base_url = "{base_url}"',
                "timeout_seconds = 10",
                "[poll]",
                "interval_seconds = 1",
                "max_interval_seconds = 2",
                "[[orgs]]",
                f'uuid = "{ORG_A}"',
                'token_env = "TOKEN_A"',
            ]
        )
        + "\n"
    )


def _refused(port: int) -> bool:
    """True if a new connection is not served: refused, or accepted by the kernel's backlog
    just before the listening socket closed and then reset."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except (ConnectionRefusedError, ConnectionResetError):
        return True


async def _start(
    tmp_path: Path, upstream: TestServer, grace: float
) -> tuple[asyncio.subprocess.Process, int]:
    port = _free_port()
    config = tmp_path / "config.toml"
    _write_config(config, str(upstream.make_url("")).rstrip("/"), port, grace)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(config),
        env={**os.environ, "TOKEN_A": TOKEN_A},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return process, port
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    await process.wait()
    raise AssertionError("monitor run never answered /healthz")


async def _project(port: int) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{port}/api/organizations/{ORG_A}/projects/{PROJECT}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {TOKEN_A}"}) as response,
    ):
        return response.status, await response.read()


async def _stop(process: asyncio.subprocess.Process, within: float) -> tuple[float, str]:
    """SIGTERM has been sent: wait for the exit, return how long it took and stderr."""
    started = time.monotonic()
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=within)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return time.monotonic() - started, stderr.decode()


@pytest.mark.parametrize(
    "grace",
    [
        10.0,
        # The answer comes after aiohttp's first wait (half the grace, see daemon.py) and
        # still within the grace: it must get through all the same.
        2.0,
    ],
)
async def test_sigterm_lets_an_in_flight_request_finish_and_refuses_new_ones(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path, grace: float
) -> None:
    slow = SlowProjects(delay=1.5)
    upstream = await aiohttp_server(slow.app())
    process, port = await _start(tmp_path, upstream, grace=grace)
    try:
        in_flight = asyncio.ensure_future(_project(port))
        await asyncio.wait_for(slow.started.wait(), timeout=10)
        process.send_signal(signal.SIGTERM)
        refused = False
        for _ in range(50):  # the listening socket closes at once, long before 1.5 s
            refused = await asyncio.to_thread(_refused, port)
            if refused:
                break
            await asyncio.sleep(0.02)
        assert refused, "a new connection was still accepted after SIGTERM"
        assert not in_flight.done()
        status, body = await asyncio.wait_for(in_flight, timeout=10)
        elapsed, log = await _stop(process, within=grace + 5)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert status == 200 and body == BODY
    assert process.returncode == 0, log
    assert elapsed < grace, log  # the in-flight request was done: no waiting out the grace
    assert "stopping" in log
    assert "Traceback" not in log and "Unclosed" not in log and "Error" not in log
    assert TOKEN_A not in log


async def test_sigterm_exits_0_when_a_request_outlasts_the_grace(
    aiohttp_server: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    grace = 3.0
    slow = SlowProjects(delay=12)
    upstream = await aiohttp_server(slow.app())
    process, port = await _start(tmp_path, upstream, grace=grace)
    try:
        in_flight = asyncio.ensure_future(_project(port))
        await asyncio.wait_for(slow.started.wait(), timeout=10)
        process.send_signal(signal.SIGTERM)
        elapsed, log = await _stop(process, within=grace + 6)
        # Cut off after the grace: the caller sees its connection close, not a hang.
        outcome = await asyncio.wait_for(
            asyncio.gather(in_flight, return_exceptions=True), timeout=5
        )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, log
    # Exited within the grace (plus the time to close up), long before the upstream would
    # have answered (12 s): the grace is enforced, and once, not twice.
    assert elapsed < grace + 2, log
    assert isinstance(outcome[0], aiohttp.ClientError), outcome
    assert "Traceback" not in log and "Unclosed" not in log
    assert TOKEN_A not in log
