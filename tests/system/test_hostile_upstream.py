"""A real `monitor run` against an upstream that misbehaves on the wire on purpose: it drips
its body, announces more bytes than it sends (then closes, or goes silent), or sends tens
of megabytes. Each case names the bound of the README's limits table it checks.

(`tests/app/test_proxy_deadline.py` holds the in-process proxy cases of the deadline;
these add the poll side and the real process.)
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.config import ORGS_ABC
from tests.support.hostile import (
    Drip,
    HostileUpstream,
    Stream,
    proc_status,
    reset_peak_rss,
    short_then_close,
    short_then_hold,
    stopped_cleanly,
)
from tests.support.metrics import parse_metrics, value
from tests.support.process import MonitorProcess, run_serving, status_200
from tests.support.upstream import AUTH_A, ORG_A, ORG_B, ORG_C, TOKEN_A, TOKEN_B, TOKEN_C
from tests.support.waiting import until_sync

StartMonitor = Callable[..., MonitorProcess]
ENV = {"TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "TOKEN_C": TOKEN_C}
DEADLINE = 1.0  # [upstream] timeout_seconds
# What a loaded 2-core machine may add to a configured bound before the test calls it
# broken: scheduling, the event loop's timer granularity, the test's own client.
MARGIN = 4.0


def project_path(org_uuid: str, project: str) -> str:
    return f"/api/organizations/{org_uuid}/projects/{project}"


def usage_path(org_uuid: str) -> str:
    return f"/api/organizations/{org_uuid}/usage"


async def start(
    start_monitor: StartMonitor, tmp_path: Path, upstream: str, deadline: float
) -> tuple[MonitorProcess, str]:
    monitor, port = await run_serving(
        start_monitor,
        tmp_path / "config.toml",
        upstream,
        ORGS_ABC,
        ENV,
        server={"shutdown_grace_seconds": 1},
        upstream={"timeout_seconds": deadline},
        poll={"interval_seconds": 1, "max_interval_seconds": 2},
    )
    return monitor, f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Ending:
    """How a proxied answer ended for its caller."""

    status: int
    announced: int | None  # the Content-Length relayed to the caller
    received: int
    seconds: float  # from sending the request to the end of the answer
    cut: bool  # the connection was aborted before the announced end


async def read_to_the_end(session: aiohttp.ClientSession, url: str) -> Ending:
    started = time.monotonic()
    received = 0
    async with session.get(url, headers=AUTH_A) as response:
        try:
            async for chunk in response.content.iter_any():
                received += len(chunk)
        except aiohttp.ClientPayloadError:
            cut = True
        else:
            cut = False
        seconds = time.monotonic() - started
        return Ending(response.status, response.content_length, received, seconds, cut)


async def test_a_dripping_or_short_body_ends_at_the_deadline_for_polls_and_callers(
    start_monitor: StartMonitor, tmp_path: Path
) -> None:
    """Bound: `[upstream] timeout_seconds`, the whole exchange. An answer whose headers came
    in time but whose body drips, or stops short of its Content-Length and then goes
    silent, ends at the deadline: the poll counts `timeout`, the proxied caller's
    connection is aborted. One that stops short and closes is a `connection_error`, and
    the caller's connection is aborted at once. No caller gets a complete-looking answer."""
    drips = {"poll": Drip(every=0.05), "proxy": Drip(every=0.05)}
    async with HostileUpstream() as upstream:
        upstream.behaviours = {
            usage_path(ORG_A): drips["poll"],
            usage_path(ORG_B): short_then_close(1000, b'{"five_hour": {"utilization"'),
            usage_path(ORG_C): short_then_hold(1000, b'{"five_hour": {"utilization"'),
            project_path(ORG_A, "drip"): drips["proxy"],
            project_path(ORG_A, "close"): short_then_close(1000, b'{"uuid": "close"'),
            project_path(ORG_A, "hold"): short_then_hold(1000, b'{"uuid": "hold"'),
        }
        monitor, base = await start(start_monitor, tmp_path, upstream.url, DEADLINE)
        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(
                *(
                    read_to_the_end(session, base + project_path(ORG_A, name))
                    for name in ("drip", "close", "hold")
                )
            )
        expected = {"acme": "timeout", "beta": "connection_error", "gamma": "timeout"}

        def polled() -> dict[str, float | None] | None:
            samples = parse_metrics(monitor.wait_until(f"{base}/metrics", status_200))
            counts = {
                org: value(samples, "claude_usage_polls_total", org=org, result=result)
                for org, result in expected.items()
            }
            if all(counts.values()):
                return {
                    org: value(samples, "claude_usage_poll_duration_seconds", org=org)
                    for org in expected
                }
            return None

        durations = await asyncio.to_thread(
            until_sync, polled, "each org's poll to count its result"
        )
        await asyncio.wait_for(drips["proxy"].gone.wait(), 10)
        await stopped_cleanly(monitor)
    print(f"\nproxied: {answers}\npoll durations: {durations}")
    for name, answer in zip(("drip", "close", "hold"), answers, strict=True):
        assert answer.status == 200, answer  # the headers came in time
        assert answer.cut, f"{name}: the caller got a complete-looking answer: {answer}"
        assert answer.announced is not None and answer.received < answer.announced, answer
        assert answer.seconds < DEADLINE + MARGIN, (
            f"{name}: [upstream] timeout_seconds = {DEADLINE:g} s, yet the caller's "
            f"connection ended after {answer.seconds:.2f} s (margin {MARGIN:g} s)"
        )
    for org in ("acme", "gamma"):  # the dripping and the silent body: timeouts
        duration = durations[org]
        assert duration is not None and duration < DEADLINE + MARGIN, (
            f"{org}: [upstream] timeout_seconds = {DEADLINE:g} s, yet the poll took {duration} s"
        )
    # The dripping upstream stopped being read at the deadline: it sent at most about
    # DEADLINE / every bytes before the proxy let go.
    assert drips["proxy"].sent < (DEADLINE + MARGIN) / drips["proxy"].every, drips["proxy"]


BIG = 64 * 1024 * 1024
RSS_GROWTH_BOUND = 20 * 1024 * 1024


async def test_a_body_of_64_mib_streams_through_in_flat_memory(
    start_monitor: StartMonitor, tmp_path: Path
) -> None:
    """Bound: "proxied answer body: none: streamed" (relayed chunk by chunk, never held in
    memory). The daemon's peak resident memory while 64 MiB go through (VmHWM, reset
    after a warm-up transfer: the kernel's exact peak, no sample missed) is less than
    20 MiB over its level before; the caller gets every byte, in order."""
    warm_up, big = Stream(total=4 * 1024 * 1024), Stream(total=BIG)
    async with HostileUpstream() as upstream:
        upstream.behaviours = {
            project_path(ORG_A, "warm"): warm_up,
            project_path(ORG_A, "big"): big,
        }
        # The whole exchange must fit in the deadline: give it time on a loaded machine.
        monitor, base = await start(start_monitor, tmp_path, upstream.url, deadline=120)
        pid = monitor.proc.pid
        async with aiohttp.ClientSession() as session:
            await _download(session, base + project_path(ORG_A, "warm"))
            baseline = proc_status(pid, "VmRSS")
            reset_peak_rss(pid)  # VmHWM now follows this transfer only
            received, digest = await _download(session, base + project_path(ORG_A, "big"))
            peak = proc_status(pid, "VmHWM")
        await stopped_cleanly(monitor)
    growth = peak - baseline
    print(
        f"\n64 MiB through the proxy: RSS {baseline / 2**20:.1f} MiB before, peak "
        f"{peak / 2**20:.1f} MiB during: growth {growth / 2**20:.1f} MiB"
    )
    assert received == BIG and digest == big.digest, (received, digest, big.digest)
    assert growth < RSS_GROWTH_BOUND, (
        f"proxied answers are streamed, yet RSS grew by {growth / 2**20:.1f} MiB while "
        f"{BIG / 2**20:.0f} MiB went through (bound {RSS_GROWTH_BOUND / 2**20:.0f} MiB)"
    )


async def _download(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    received = 0
    async with session.get(url, headers=AUTH_A) as response:
        assert response.status == 200
        async for chunk in response.content.iter_any():
            digest.update(chunk)
            received += len(chunk)
    return received, digest.hexdigest()
