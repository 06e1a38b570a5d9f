"""The five scenarios. Each returns a JSON-ready dict; a missing tool gives `skipped`."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.daemon import Daemon, DaemonSpec, fetch, start_daemon, wait_started
from bench.load import LoadResult, run_load, wrk_path
from bench.nginx import nginx_path, start_nginx
from bench.procs import HOST, Processes, free_port, rss_bytes, wait_http
from bench.sizes import Sizes
from bench.upstream import RESET_PATH, STATS_PATH, org_uuid

# An org no daemon is configured with: the proxy relays it without touching the store.
PROXY_PATH = f"/api/organizations/{org_uuid(999_999)}/usage"
TEXT_HEADERS = {"Accept-Encoding": "identity"}
# What Prometheus 3 sends (it prefers OpenMetrics, and asks for gzip).
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "Accept-Encoding": "gzip",
}
MB = 1024 * 1024

JSON = dict[str, Any]


@dataclass
class Upstream:
    url: str
    port: int


async def start_upstream(
    procs: Processes, name: str, *, delay: float = 0.0, simulator_orgs: int = 0
) -> Upstream:
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--delay", str(delay)]
    if simulator_orgs:
        argv += ["--simulator", "--orgs", str(simulator_orgs)]
    child = procs.start(name, argv)
    url = f"http://{HOST}:{port}"
    await wait_http(url + STATS_PATH, child, within=60)
    return Upstream(url, port)


async def upstream_stats(upstream: Upstream) -> JSON:
    async with aiohttp.ClientSession() as session, session.get(upstream.url + STATS_PATH) as r:
        data: JSON = await r.json()
        return data


async def reset_upstream(upstream: Upstream, expect: int, pid: int) -> None:
    url = f"{upstream.url}{RESET_PATH}?expect={expect}&pid={pid}"
    async with aiohttp.ClientSession() as session, session.post(url) as resp:
        resp.raise_for_status()


async def wait_polled(upstream: Upstream, daemon: Daemon, within: float) -> JSON:
    """Wait (bounded) until every expected org has had its first answer; final stats."""
    deadline = time.monotonic() + within
    while True:
        stats = await upstream_stats(upstream)
        if stats["done_at"] is not None:
            return stats
        if daemon.process.poll() is not None:
            raise RuntimeError(f"monitor exited with status {daemon.process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{stats['answered']}/{stats['expect']} orgs polled within {within:g} s"
            )
        await asyncio.sleep(0.1)


# -- 1. proxy throughput and latency -----------------------------------------------------


async def proxy_scenario(
    procs: Processes, sizes: Sizes, workdir: Path, upstream: Upstream, use_wrk: bool
) -> JSON:
    tool = "wrk" if use_wrk and wrk_path() else "aiohttp"
    rows: list[JSON] = []
    results: dict[tuple[str, int], LoadResult] = {}

    async def measure(target: str, base: str) -> None:
        for connections in sizes.proxy_connections:
            result = await run_load(
                base + PROXY_PATH, connections, sizes.proxy_seconds, use_wrk=use_wrk
            )
            results[target, connections] = result
            rows.append({"target": target, **result.to_json()})

    await measure("direct", upstream.url)

    spec = DaemonSpec(orgs=1, upstream_url=upstream.url)
    daemon = start_daemon(procs, spec, workdir, "monitor-proxy")
    try:
        await wait_started(daemon, within=60)
        await measure("monitor", daemon.url)
    finally:
        procs.stop(daemon.process)

    nginx = nginx_path()
    nginx_skip: str | None = None
    if nginx is None:
        nginx_skip = "skipped: nginx not installed"
    else:
        process, url = start_nginx(procs, nginx, workdir, upstream.port)
        try:
            await wait_http(url + PROXY_PATH, process, within=30)
            await measure("nginx", url)
        finally:
            procs.stop(process)
    if nginx_skip:
        rows.append({"target": "nginx", "skipped": nginx_skip})

    most = max(sizes.proxy_connections)
    least = min(sizes.proxy_connections)
    ratios: JSON = {
        "connections_high": most,
        "connections_low": least,
        "monitor_vs_direct_rps": _ratio(results, ("monitor", most), ("direct", most)),
        "monitor_vs_nginx_rps": (nginx_skip or _ratio(results, ("monitor", most), ("nginx", most))),
        "added_p50_ms_vs_direct": round(
            results["monitor", least].p50_ms - results["direct", least].p50_ms, 3
        ),
        "added_p50_ms_vs_nginx": nginx_skip
        or round(results["monitor", least].p50_ms - results["nginx", least].p50_ms, 3),
    }
    return {"tool": tool, "seconds": sizes.proxy_seconds, "rows": rows, "ratios": ratios}


def _ratio(
    results: dict[tuple[str, int], LoadResult], top: tuple[str, int], bottom: tuple[str, int]
) -> float:
    return round(results[top].rps / results[bottom].rps, 3) if results[bottom].rps else 0.0


# -- 2..5: daemons with many orgs -----------------------------------------------------------


async def scrape_once(url: str, headers: dict[str, str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    body = await fetch(url + "/metrics", headers=headers, within=120)
    return time.perf_counter() - started, body


async def scrape_cost(daemon: Daemon, repeats: int) -> JSON:
    result: JSON = {}
    for name, headers in (("text", TEXT_HEADERS), ("prometheus", PROMETHEUS_HEADERS)):
        times: list[float] = []
        body = b""
        for _ in range(repeats):
            seconds, body = await scrape_once(daemon.url, headers)
            times.append(seconds)
        result[f"{name}_ms"] = round(statistics.median(times) * 1000, 1)
        result[f"{name}_bytes"] = len(body)
        if name == "text":
            lines = body.splitlines()
            result["samples"] = sum(1 for line in lines if line and not line.startswith(b"#"))
    return result


async def isolation(daemon: Daemon, sizes: Sizes, use_wrk: bool) -> JSON:
    url = daemon.url + PROXY_PATH
    connections = sizes.isolation_connections
    quiet = await run_load(url, connections, sizes.isolation_seconds, use_wrk=use_wrk)
    scrapes: list[float] = []
    stop = asyncio.Event()

    async def scraper() -> None:
        deadline = time.monotonic() + sizes.isolation_seconds + 30
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            seconds, _ = await scrape_once(daemon.url, PROMETHEUS_HEADERS)
            scrapes.append(seconds)
            rest = 1.0 - (time.monotonic() - started)
            if rest > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rest)

    task = asyncio.create_task(scraper())
    try:
        await asyncio.sleep(0.2)  # the first scrape is under way when the load starts
        busy = await run_load(url, connections, sizes.isolation_seconds, use_wrk=use_wrk)
    finally:
        stop.set()
        await task
    busy_p99 = busy.p99_ms
    if busy.requests == 0:
        # Nothing was answered while scraping: the p99 is at least the whole run.
        busy_p99 = sizes.isolation_seconds * 1000.0
    return {
        "orgs": sizes.isolation_orgs,
        "connections": connections,
        "quiet": quiet.to_json(),
        "scraping": busy.to_json(),
        "scrapes": len(scrapes),
        "scrape_ms_median": round(statistics.median(scrapes) * 1000, 1) if scrapes else None,
        "p99_ratio": round(busy_p99 / quiet.p99_ms, 2) if quiet.p99_ms else None,
        "rps_ratio": round(busy.rps / quiet.rps, 3) if quiet.rps else None,
    }


async def org_scenarios(
    procs: Processes, sizes: Sizes, workdir: Path, upstream: Upstream, use_wrk: bool
) -> tuple[JSON, JSON, JSON, JSON]:
    """Start one daemon per org count; poll scaling, scrape cost, memory, isolation."""
    polls: JSON = {
        "latency_s": sizes.poll_latency,
        "concurrency": sizes.poll_concurrency,
        "rows": [],
    }
    scrapes: JSON = {"rows": []}
    memory: JSON = {"rows": []}
    isolation_result: JSON = {"skipped": "not run"}
    for orgs in sizes.daemon_sizes():
        spec = DaemonSpec(orgs=orgs, upstream_url=upstream.url, concurrency=sizes.poll_concurrency)
        started = time.time()
        daemon = start_daemon(procs, spec, workdir, f"monitor-{orgs}")
        try:
            await reset_upstream(upstream, orgs, daemon.pid)
            ideal = orgs * sizes.poll_latency / sizes.poll_concurrency
            stats = await wait_polled(upstream, daemon, sizes.poll_timeout + 3 * ideal)
            await wait_started(daemon, within=30)
            if orgs in sizes.poll_orgs:
                cycle = stats["done_at"] - stats["first_at"]
                cpu = (stats["cpu_done"] or 0.0) - (stats["cpu_first"] or 0.0)
                polls["rows"].append(
                    {
                        "orgs": orgs,
                        "start_to_first_poll_s": round(stats["first_at"] - started, 2),
                        "cycle_s": round(cycle, 3),
                        "ideal_s": round(ideal, 3),
                        "ratio": round(cycle / ideal, 2),
                        "polls": stats["polls"],
                        "cpu_s": round(cpu, 3),
                        "cpu_ms_per_poll": round(cpu * 1000 / max(1, stats["polls"]), 3),
                    }
                )
            if orgs == sizes.memory_orgs[1]:
                memory["rows"].append(
                    {"orgs": orgs, "rss_mb": round(rss_bytes(daemon.pid) / MB, 1)}
                )
            if orgs in sizes.scrape_orgs:
                scrapes["rows"].append(
                    {"orgs": orgs, **await scrape_cost(daemon, sizes.scrape_repeats)}
                )
            if orgs == sizes.memory_orgs[1]:
                memory["rows"][-1]["rss_after_scrapes_mb"] = round(rss_bytes(daemon.pid) / MB, 1)
            if orgs == sizes.isolation_orgs:
                isolation_result = await isolation(daemon, sizes, use_wrk)
        finally:
            procs.stop(daemon.process)
    return polls, scrapes, memory, isolation_result


async def small_memory(procs: Processes, sizes: Sizes, workdir: Path, upstream: Upstream) -> JSON:
    orgs = sizes.memory_orgs[0]
    spec = DaemonSpec(orgs=orgs, upstream_url=upstream.url, concurrency=sizes.poll_concurrency)
    daemon = start_daemon(procs, spec, workdir, f"monitor-{orgs}")
    try:
        await reset_upstream(upstream, orgs, daemon.pid)
        await wait_polled(upstream, daemon, sizes.poll_timeout)
        await wait_started(daemon, within=30)
        return {"orgs": orgs, "rss_mb": round(rss_bytes(daemon.pid) / MB, 1)}
    finally:
        procs.stop(daemon.process)
