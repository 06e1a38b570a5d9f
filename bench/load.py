"""Load generators: `wrk` when installed, else a small aiohttp closed-loop generator.

Both run for a fixed duration with a fixed number of connections, each connection sending
its next request when the previous answer is complete, and report requests/s, p50, p99.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import aiohttp

# Every target gets the same header (the floor and monitor forward it upstream).
AUTH_VALUE = "Bearer x"
AUTH_HEADER = f"Authorization: {AUTH_VALUE}"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadResult:
    tool: str
    connections: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "connections": self.connections,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
        }


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk: cannot read latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str, connections: int, seconds: float) -> LoadResult:
    percentiles = {
        int(m.group(1)): _duration_ms(m.group(2))
        for m in re.finditer(r"^\s+(\d+)(?:\.\d+)?%\s+(\S+)\s*$", output, re.MULTILINE)
    }
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output)) + sum(
        int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output)
    )
    if rps is None or total is None or 50 not in percentiles or 99 not in percentiles:
        raise ValueError(f"wrk: unexpected output:\n{output}")
    return LoadResult(
        tool="wrk",
        connections=connections,
        seconds=seconds,
        requests=int(total.group(1)),
        errors=errors,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
    )


def run_wrk(url: str, connections: int, seconds: float, wrk: str) -> LoadResult:
    argv = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-H",
        AUTH_HEADER,
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return parse_wrk(done.stdout, connections, max(1, round(seconds)))


async def run_aiohttp(url: str, connections: int, seconds: float) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    headers = {"Authorization": AUTH_VALUE}
    timeout = aiohttp.ClientTimeout(total=10)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                async with session.get(url, headers=headers, timeout=timeout) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000.0)

    connector = aiohttp.TCPConnector(limit=connections)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return LoadResult(
        tool="aiohttp",
        connections=connections,
        seconds=elapsed,
        requests=len(latencies),
        errors=errors,
        rps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
    )


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100.0 * len(ordered)) - 1))
    return ordered[index]


async def run_load(url: str, connections: int, seconds: float, *, use_wrk: bool) -> LoadResult:
    wrk = wrk_path() if use_wrk else None
    if wrk is not None and seconds >= 1:
        return await asyncio.to_thread(run_wrk, url, connections, seconds, wrk)
    return await run_aiohttp(url, connections, seconds)
