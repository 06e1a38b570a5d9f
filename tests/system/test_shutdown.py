"""Graceful shutdown of a real `monitor run`: on SIGTERM it stops accepting, lets in-flight
proxied requests finish for up to `[server] shutdown_grace_seconds`, then exits 0.

No assertion here reads a clock: a grace far longer than the test's bounded wait for the
exit shows that monitor did not wait it out, and an upstream that answers far later than
that shows that the grace cuts a request off. (That the grace is not spent twice, once per
aiohttp shutdown phase, is `aiohttp_shutdown_timeout`'s unit test.) The log cannot tell
those cases apart: monitor logs "stopping" when the signal arrives and nothing after.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import MakeServer, StartMonitor
from tests.support.fakes import SlowUpstream
from tests.support.net import refused
from tests.support.process import MonitorProcess, run_serving
from tests.support.upstream import AUTH_A, ORG_A, TOKEN_A, base_url
from tests.support.waiting import until

PROJECT = "proj_shutdown"
# A body big enough to span several chunks, so "the full body" means something.
BODY = b'{"uuid": "proj_shutdown", "padding": "' + b"x" * 200_000 + b'"}'
# How long the test waits for monitor to exit: far beyond what the shutdown takes, far
# below the long grace and the upstream that never answers in time.
EXIT_WITHIN = 30.0


async def start(
    tmp_path: Path, start_monitor: StartMonitor, upstream: str, grace: float
) -> tuple[MonitorProcess, int]:
    return await run_serving(
        start_monitor,
        tmp_path / "config.toml",
        upstream,
        [{"uuid": ORG_A, "token_env": "TOKEN_A"}],
        {"TOKEN_A": TOKEN_A},
        server={"shutdown_grace_seconds": grace},
        upstream={"timeout_seconds": 600},  # only the grace may cut a request short
        poll={"interval_seconds": 1, "max_interval_seconds": 2},
    )


async def project(port: int) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{port}/api/organizations/{ORG_A}/projects/{PROJECT}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=AUTH_A) as response:
        return response.status, await response.read()


@pytest.mark.parametrize(
    ("grace", "delay"),
    [
        # The answer comes long before the grace ends, and monitor exits as soon as it is
        # out: within EXIT_WITHIN, a fraction of the grace.
        (4 * EXIT_WITHIN, 1.5),
        # The answer comes after aiohttp's first wait (half the grace, see daemon.py) and
        # still within the grace: it must get through all the same.
        (2.0, 1.5),
    ],
)
async def test_sigterm_lets_an_in_flight_request_finish_and_refuses_new_ones(
    aiohttp_server: MakeServer,
    tmp_path: Path,
    start_monitor: StartMonitor,
    grace: float,
    delay: float,
) -> None:
    slow = SlowUpstream(delay=delay, usage_delay=0, body=BODY)
    upstream = await aiohttp_server(slow.app())
    monitor, port = await start(tmp_path, start_monitor, base_url(upstream), grace)
    in_flight = asyncio.ensure_future(project(port))
    await asyncio.wait_for(slow.started.wait(), timeout=10)
    monitor.send_signal(signal.SIGTERM)
    # the listening socket closes at once, long before the upstream answers
    await until(lambda: refused(port), "new connections to be refused after SIGTERM")
    assert not in_flight.done()
    status, body = await asyncio.wait_for(in_flight, timeout=EXIT_WITHIN)
    code, _, log = await monitor.wait_async(within=EXIT_WITHIN)
    assert status == 200 and body == BODY
    assert code == 0, log
    assert "stopping" in log
    assert "Traceback" not in log and "Unclosed" not in log and "Error" not in log
    assert TOKEN_A not in log


async def test_sigterm_exits_0_when_a_request_outlasts_the_grace(
    aiohttp_server: MakeServer, tmp_path: Path, start_monitor: StartMonitor
) -> None:
    slow = SlowUpstream(delay=4 * EXIT_WITHIN, usage_delay=0, body=BODY)  # never in time
    upstream = await aiohttp_server(slow.app())
    monitor, port = await start(tmp_path, start_monitor, base_url(upstream), grace=1.0)
    in_flight = asyncio.ensure_future(project(port))
    await asyncio.wait_for(slow.started.wait(), timeout=10)
    monitor.send_signal(signal.SIGTERM)
    # Exits after the grace, long before the upstream would have answered: the grace is
    # enforced.
    code, _, log = await monitor.wait_async(within=EXIT_WITHIN)
    # Cut off after the grace: the caller sees its connection close, not a hang.
    outcome = await asyncio.wait_for(asyncio.gather(in_flight, return_exceptions=True), 5)
    assert code == 0, log
    assert isinstance(outcome[0], aiohttp.ClientError), outcome
    assert "Traceback" not in log and "Unclosed" not in log
    assert TOKEN_A not in log
