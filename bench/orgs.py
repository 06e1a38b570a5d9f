"""The scenarios with many orgs: poll cycle, scrape cost, memory, and isolation.

For each org count and repetition, one fresh daemon against the Python upstream (which
delays monitor's polls by the injected latency and counts them):

1. poll: the first cycle, from the first poll to the last org's first answer, against the
   ideal `orgs x latency / concurrency`, and the daemon's CPU time over that window;
2. RSS once every org was polled;
3. scrape: the first `/metrics` after that ("first render"), then `cached_scrapes` more
   with no poll in between (their median is "cached"), uncompressed text; then as many as
   Prometheus asks for them (OpenMetrics, gzip), for the bytes on the wire;
4. RSS after the scrapes;
5. the poll floor (bench/poll_floor.py): a bare aiohttp client fetching every org once
   through the same upstream, its CPU measured the same way;
6. at `isolation_orgs` only: the proxy's latency with no scraping, then while `/metrics`
   is scraped every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.daemon import Daemon, DaemonSpec, fetch, start_daemon, wait_started
from bench.load import run_load
from bench.procs import Processes, rss_bytes
from bench.proxy import PROXY_PATH
from bench.sizes import Sizes
from bench.stats import summarize
from bench.upstream import RESET_PATH, STATS_PATH, Upstream

TEXT_HEADERS = {"Accept-Encoding": "identity"}
# What Prometheus 3 sends (it prefers OpenMetrics, and asks for gzip).
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "Accept-Encoding": "gzip",
}
MB = 1024 * 1024
POLL_KEYS = (
    *("start_to_first_poll_s", "cycle_s", "ideal_s", "ratio"),
    *("polls", "cpu_s", "cpu_ms_per_poll", "floor_cpu_ms_per_poll"),
)
SCRAPE_KEYS = (
    *("samples", "first_ms", "cached_ms", "text_bytes"),
    *("prometheus_ms", "prometheus_bytes"),
)
MEMORY_KEYS = ("rss_after_polls_mb", "rss_after_scrapes_mb", "rss_max_mb")
ISOLATION_KEYS = (
    *("quiet_p99_ms", "scraping_p99_ms", "p99_ratio", "quiet_rps", "scraping_rps"),
    *("scrapes", "scrape_ms_median"),
)

JSON = dict[str, Any]


async def org_scenarios(
    procs: Processes, sizes: Sizes, workdir: Path, upstream: Upstream, use_wrk: bool
) -> JSON:
    """Every org count, `sizes.repeats` fresh daemons each; rows of medians and spreads."""
    polls: list[JSON] = []
    scrapes: list[JSON] = []
    memory: list[JSON] = []
    isolation_runs: list[JSON] = []
    for orgs in sizes.org_counts:
        runs: list[JSON] = []
        for repeat in range(sizes.repeats):
            name = f"monitor-{orgs}-{repeat + 1}"
            run, iso = await _one_daemon(procs, sizes, workdir, upstream, orgs, name, use_wrk)
            runs.append(run)
            if iso is not None:
                isolation_runs.append(iso)
        polls.append(_row(orgs, runs, POLL_KEYS))
        scrapes.append(_row(orgs, runs, SCRAPE_KEYS))
        memory.append(_row(orgs, runs, MEMORY_KEYS))
    isolation: JSON = {"skipped": f"skipped: not run ({sizes.isolation_orgs} orgs not measured)"}
    if isolation_runs:
        isolation = {
            "orgs": sizes.isolation_orgs,
            "connections": sizes.isolation_connections,
            "seconds": sizes.isolation_seconds,
            **_row(sizes.isolation_orgs, isolation_runs, ISOLATION_KEYS),
        }
    return {
        "poll_scaling": {
            "latency_s": sizes.poll_latency,
            "concurrency": sizes.poll_concurrency,
            "rows": polls,
        },
        "scrape_cost": {"cached_scrapes": sizes.cached_scrapes, "rows": scrapes},
        "memory": {"rows": memory},
        "isolation": isolation,
    }


def _row(orgs: int, runs: list[JSON], keys: tuple[str, ...]) -> JSON:
    picked = [{key: run.get(key) for key in keys} for run in runs]
    return {"orgs": orgs, **summarize(picked, keys), "runs": picked}


async def _one_daemon(
    procs: Processes,
    sizes: Sizes,
    workdir: Path,
    upstream: Upstream,
    orgs: int,
    name: str,
    use_wrk: bool,
) -> tuple[JSON, JSON | None]:
    spec = DaemonSpec(orgs=orgs, upstream_url=upstream.url, concurrency=sizes.poll_concurrency)
    started = time.time()
    daemon = start_daemon(procs, spec, workdir, name)
    try:
        await _reset_upstream(upstream, orgs, daemon.pid)
        ideal = orgs * sizes.poll_latency / sizes.poll_concurrency
        stats = await _wait_polled(upstream, daemon, sizes.poll_timeout + 3 * ideal)
        await wait_started(daemon, within=30)
        run = _poll_figures(stats, started, ideal)
        run["rss_after_polls_mb"] = round(rss_bytes(daemon.pid) / MB, 1)
        run.update(await _scrape_cost(daemon, sizes.cached_scrapes))
        run["rss_after_scrapes_mb"] = round(rss_bytes(daemon.pid) / MB, 1)
        run["rss_max_mb"] = max(run["rss_after_polls_mb"], run["rss_after_scrapes_mb"])
        iso = await _isolation(daemon, sizes, use_wrk) if orgs == sizes.isolation_orgs else None
    finally:
        procs.stop(daemon.process)
    run["floor_cpu_ms_per_poll"] = await _poll_floor(procs, sizes, upstream, orgs, name)
    return run, iso


async def _poll_floor(
    procs: Processes, sizes: Sizes, upstream: Upstream, orgs: int, name: str
) -> float:
    """CPU ms per poll of the bare aiohttp client, after the daemon stopped."""
    argv = [sys.executable, "-m", "bench.poll_floor", "--upstream", upstream.url]
    argv += ["--orgs", str(orgs), "--concurrency", str(sizes.poll_concurrency)]
    child = procs.start(f"{name}-poll-floor", argv)
    ideal = orgs * sizes.poll_latency / sizes.poll_concurrency
    try:
        deadline = time.monotonic() + sizes.poll_timeout + 3 * ideal
        while child.poll() is None:  # it exits once every org answered
            if time.monotonic() > deadline:
                raise TimeoutError(f"the poll floor did not finish within {sizes.poll_timeout} s")
            await asyncio.sleep(0.1)
    finally:
        procs.stop(child)
    if child.returncode != 0:
        raise RuntimeError(f"the poll floor exited with status {child.returncode}")
    stats = await _upstream_stats(upstream)
    cpu = (stats["cpu_done"] or 0.0) - (stats["cpu_first"] or 0.0)
    return round(float(cpu) * 1000 / max(1, int(stats["polls"])), 4)


def _poll_figures(stats: JSON, started: float, ideal: float) -> JSON:
    cycle = stats["done_at"] - stats["first_at"]
    cpu = (stats["cpu_done"] or 0.0) - (stats["cpu_first"] or 0.0)
    return {
        "start_to_first_poll_s": round(stats["first_at"] - started, 2),
        "cycle_s": round(cycle, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(cycle / ideal, 3),
        "polls": stats["polls"],
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_poll": round(cpu * 1000 / max(1, stats["polls"]), 4),
    }


async def _upstream_stats(upstream: Upstream) -> JSON:
    async with aiohttp.ClientSession() as session, session.get(upstream.url + STATS_PATH) as r:
        data: JSON = await r.json()
        return data


async def _reset_upstream(upstream: Upstream, expect: int, pid: int) -> None:
    url = f"{upstream.url}{RESET_PATH}?expect={expect}&pid={pid}"
    async with aiohttp.ClientSession() as session, session.post(url) as resp:
        resp.raise_for_status()


async def _wait_polled(upstream: Upstream, daemon: Daemon, within: float) -> JSON:
    """Wait (bounded) until every expected org has had its first answer; final stats."""
    deadline = time.monotonic() + within
    while True:
        stats = await _upstream_stats(upstream)
        if stats["done_at"] is not None:
            return stats
        if daemon.process.poll() is not None:
            raise RuntimeError(f"monitor exited with status {daemon.process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{stats['answered']}/{stats['expect']} orgs polled within {within:g} s"
            )
        await asyncio.sleep(0.1)


async def _scrape(url: str, headers: dict[str, str]) -> tuple[float, bytes]:
    started = time.perf_counter()
    body = await fetch(url + "/metrics", headers=headers, within=120)
    return time.perf_counter() - started, body


async def _scrape_cost(daemon: Daemon, cached: int) -> JSON:
    first, body = await _scrape(daemon.url, TEXT_HEADERS)
    later = [(await _scrape(daemon.url, TEXT_HEADERS))[0] for _ in range(cached)]
    wire = [await _scrape(daemon.url, PROMETHEUS_HEADERS) for _ in range(cached)]
    lines = body.splitlines()
    return {
        "samples": sum(1 for line in lines if line and not line.startswith(b"#")),
        "first_ms": round(first * 1000, 1),
        "cached_ms": round(statistics.median(later) * 1000, 1),
        "text_bytes": len(body),
        "prometheus_ms": round(statistics.median(s for s, _ in wire) * 1000, 1),
        "prometheus_bytes": len(wire[-1][1]),
    }


async def _isolation(daemon: Daemon, sizes: Sizes, use_wrk: bool) -> JSON:
    url = daemon.url + PROXY_PATH
    connections = sizes.isolation_connections
    quiet = await run_load(url, connections, sizes.isolation_seconds, use_wrk=use_wrk)
    scrapes: list[float] = []
    stop = asyncio.Event()

    async def scraper() -> None:
        deadline = time.monotonic() + sizes.isolation_seconds + 30
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            seconds, _ = await _scrape(daemon.url, PROMETHEUS_HEADERS)
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
        "quiet_p99_ms": quiet.p99_ms,
        "scraping_p99_ms": busy_p99,
        "p99_ratio": round(busy_p99 / quiet.p99_ms, 3) if quiet.p99_ms else None,
        "quiet_rps": quiet.rps,
        "scraping_rps": busy.rps,
        "scrapes": len(scrapes),
        "scrape_ms_median": round(statistics.median(scrapes) * 1000, 1) if scrapes else None,
    }
