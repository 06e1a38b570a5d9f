"""Hundreds of client connections that never finish a request, held open against a real
`monitor run` while `/metrics` and the proxy must keep answering.

Bound (README, limits): idle client connections, "idle or slow connections cost a file
descriptor each and never hold up other requests". Every request made meanwhile answers
within `[upstream] timeout_seconds` (a bound from the config: the time a proxied request
may take at most, not a performance target), and once the connections close, the
daemon's file descriptors come back to their level before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.support.config import write_config
from tests.support.hostile import accepted_connections, open_fds, stopped_cleanly
from tests.support.net import free_port
from tests.support.process import MonitorProcess, status_200
from tests.support.upstream import AUTH_A, ORG_A, TOKEN_A, Upstream
from tests.support.waiting import until

StartMonitor = Callable[..., MonitorProcess]
DEADLINE = 5.0  # [upstream] timeout_seconds
HELD = 300
# What each held connection sent before going quiet: nothing, half a request line, or a
# request line and a header but never the blank line that ends the head.
OPENINGS = (b"", b"GET /metr", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
REQUESTS = 20  # of each kind, made while the connections are held
FD_SLACK = 10  # fds that come and go: a scheduler's, a poll's
CLIENT_SLACK = 3  # the test's own connections whose sockets wait for the GC (urllib's)


async def hold(port: int, opening: bytes) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    if opening:
        writer.write(opening)
        await writer.drain()
    return writer


async def timed(session: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, float]:
    started = time.monotonic()
    async with session.get(url, **kw) as response:  # type: ignore[arg-type]
        await response.read()
    return response.status, time.monotonic() - started


async def test_hundreds_of_stalled_connections_hold_up_nothing_and_leave_no_fd(
    upstream: Upstream, tmp_path: Path, start_monitor: StartMonitor
) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "config.toml",
        upstream.url,
        [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"}],
        server={"port": port},
        upstream={"timeout_seconds": DEADLINE},
    )
    monitor = start_monitor(["run", "--config", str(config)], {"TOKEN_A": TOKEN_A})
    base = f"http://127.0.0.1:{port}"
    await monitor.wait_until_async(f"{base}/readyz", status_200)
    pid = monitor.proc.pid
    usage = f"{base}/api/organizations/{ORG_A}/usage"
    # No keep-alive on the test's side: its own connections must not blur the fd count.
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=4 * DEADLINE)  # a hang fails, with its figure
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await timed(session, f"{base}/metrics")
        await timed(session, usage, headers=AUTH_A)
        fds = {"before": open_fds(pid)}
        held: list[asyncio.StreamWriter] = []
        for start in range(0, HELD, 50):  # in batches: the listen backlog is 128
            held += await asyncio.gather(
                *(hold(port, OPENINGS[i % len(OPENINGS)]) for i in range(start, start + 50))
            )
        await until(
            lambda: accepted_connections(pid, port) >= HELD,
            f"the daemon to accept the {HELD} connections",
        )
        fds["held"] = open_fds(pid)
        answers = await asyncio.gather(
            *(timed(session, f"{base}/metrics") for _ in range(REQUESTS)),
            *(timed(session, usage, headers=AUTH_A) for _ in range(REQUESTS)),
        )
        for writer in held:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in held), return_exceptions=True)
    left = await until(
        lambda: (n := accepted_connections(pid, port)) <= CLIENT_SLACK and str(n),
        f"the daemon to close the connections its callers closed (bound {CLIENT_SLACK})",
    )
    fds["after"] = open_fds(pid)
    await stopped_cleanly(monitor)
    slowest = max(seconds for _, seconds in answers)
    print(
        f"\nfds {fds}, client connections left {left}; slowest of {len(answers)} "
        f"requests made meanwhile: {slowest:.3f} s"
    )
    assert [status for status, _ in answers] == [200] * len(answers), answers
    assert slowest < DEADLINE, (
        f"with {HELD} stalled connections held, a request took {slowest:.2f} s: over "
        f"[upstream] timeout_seconds = {DEADLINE:g} s"
    )
    # Besides its callers' connections, the daemon may keep one pooled upstream
    # connection per concurrent proxied request (aiohttp keeps them alive for 15 s).
    fd_bound = fds["before"] + REQUESTS + FD_SLACK
    assert fds["after"] <= fd_bound, f"fds: {fds}, bound {fd_bound} once the callers left"
