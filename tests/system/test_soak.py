"""Fault soak (about two minutes; `pytest -m soak` runs it alone): 200 orgs polled every
second while 20 workers send proxied requests, a cycler puts the simulator through every
fault it has, and a scraper reads `/metrics` twice a second.

Throughout: `/metrics` answers 200 and parses; no ERROR log or unhandled exception; every
proxied request is answered (the upstream's status, or the proxy's 502/504) within the
timeout plus a second. Afterwards open fds and upstream connections return to their
baseline and memory growth stays small. The figures are printed and saved as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from monitor.app import create_app
from monitor.simulator import Fault, Shape, Simulator, simulator_app
from monitor.simulator.model import stable_uuid
from tests.support.config import make_config
from tests.support.metrics import parse_metrics, totals_by
from tests.support.tools import promtool_check_metrics
from tests.support.upstream import base_url
from tests.support.waiting import until

pytestmark = [
    pytest.mark.soak,
    pytest.mark.tool,  # promtool checks the last scrape
    # Measures latency, memory and fds: tracing would skew all three (and coverage's own
    # data would count as growth).
    pytest.mark.untraced,
]

ORGS = 200
WORKERS = 20
TIMEOUT = 1.0  # [upstream] timeout_seconds
LOAD_SECONDS = 85.0
FAULT_STEP_SECONDS = 2.5
SCRAPE_EVERY = 0.5
ERROR_MARKS = (
    "Task exception was never retrieved",
    "Unhandled exception",
    "Error handling request",
)

# Every kind of fault the simulator can act out: statuses with and without Retry-After,
# HTML pages, delays within and past the timeout, dropped connections, truncated bodies.
FAULTS: list[tuple[str, Fault]] = [
    ("500", Fault(status=500)),
    ("502 html", Fault(status=502, body="<html>bad gateway</html>", content_type="text/html")),
    ("503 retry-after", Fault(status=503, retry_after="1")),
    ("429 retry-after 0", Fault(status=429, retry_after="0")),
    ("429 retry-after 5", Fault(status=429, retry_after="5")),
    ("401", Fault(status=401)),
    ("403", Fault(status=403)),
    ("404", Fault(status=404)),
    ("cloudflare", Fault(cloudflare=True)),
    ("200 not json", Fault(status=200, body="<!doctype html><p>hi", content_type="text/html")),
    ("delay within", Fault(delay=0.4)),
    ("delay past timeout", Fault(delay=1.6)),
    ("drop", Fault(drop=True)),
    ("truncate", Fault(truncate=True)),
    ("truncate 500", Fault(status=500, truncate=True)),
    ("delay then drop", Fault(delay=0.5, drop=True)),
]


def org_uuid(index: int) -> str:
    return stable_uuid("soak-org", str(index))


def token(index: int) -> str:
    return f"soak-token-{index:04d}-0123456789abcdef"


@dataclass
class Figures:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    busy: int = 0  # the proxy's own 503 upstream_busy (the upstream's 503 faults are not)
    cut_after_status: int = 0  # a truncated upstream body: the caller's connection is aborted
    unanswered: list[str] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    max_latency: float = 0.0
    scrapes: int = 0
    scrape_failures: list[str] = field(default_factory=list)
    faults_applied: Counter[str] = field(default_factory=Counter)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def simulator() -> Simulator:
    sim = Simulator(max_requests=2000)
    shapes: tuple[Shape, ...] = ("seed", "limits_2026", "oauth_2025")
    for index in range(ORGS):
        sim.add_org(org_uuid(index), f"soak-{index:03d}", shape=shapes[index % 3])
        sim.add_account(token=token(index), org_uuids=[org_uuid(index)])
    return sim


def request_for(rng: random.Random, base: str) -> tuple[str, str, dict[str, str], bytes | None]:
    index = rng.randrange(ORGS)
    org = org_uuid(index)
    project = stable_uuid(org, "project", "0")
    headers = {"Authorization": f"Bearer {token(index)}", "Accept-Encoding": "gzip"}
    prefix = f"{base}/api/organizations/{org}"
    choice = rng.randrange(8)
    if choice == 0:
        return "GET", f"{prefix}/projects/{project}", headers, None
    if choice == 1:
        return "GET", f"{prefix}/projects/{project}/docs", headers, None
    if choice == 2:
        return "GET", f"{prefix}/projects/{project}/files", headers, None
    if choice == 3:
        return "GET", f"{prefix}/memory?project_uuid={project}", headers, None
    if choice == 4:
        body = json.dumps({"url": "https://example.com/a", "allowed_urls": ["https://example.com"]})
        return "POST", f"{prefix}/cowork/web_fetch", headers, body.encode()
    if choice == 5:
        return "GET", f"{base}/api/organizations", headers, None
    return "GET", f"{prefix}/usage", headers, None


async def worker(
    seed: int, base: str, session: aiohttp.ClientSession, stop: asyncio.Event, figures: Figures
) -> None:
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        method, url, headers, body = request_for(rng, base)
        started = loop.time()
        status: int | None = None
        try:
            async with session.request(method, url, headers=headers, data=body) as response:
                status = response.status
                answer = await response.read()
                if status == 503 and b'"upstream_busy"' in answer:
                    figures.busy += 1
        except aiohttp.ClientPayloadError:
            figures.cut_after_status += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            if status is None:
                figures.unanswered.append(f"{method} {url}: {type(exc).__name__}")
            else:
                figures.cut_after_status += 1
        elapsed = loop.time() - started
        figures.requests += 1
        if status is not None:
            figures.statuses[status] += 1
        figures.max_latency = max(figures.max_latency, elapsed)
        if elapsed > TIMEOUT + 1.0:
            figures.late.append(round(elapsed, 3))
        await asyncio.sleep(rng.uniform(0.0, 0.03))


async def fault_cycler(sim: Simulator, stop: asyncio.Event, figures: Figures) -> None:
    rng = random.Random(7)
    step = 0
    while not stop.is_set():
        for key in list(sim.faults.snapshot()):
            sim.clear_fault(key)
        name, fault = FAULTS[step % len(FAULTS)]
        if step % 2 == 0:
            sim.set_fault("*", fault)
            figures.faults_applied[f"{name} (every org)"] += 1
        else:
            for index in rng.sample(range(ORGS), ORGS // 4):
                sim.set_fault(org_uuid(index), fault)
            figures.faults_applied[f"{name} (a quarter of the orgs)"] += 1
        step += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=FAULT_STEP_SECONDS)
    for key in list(sim.faults.snapshot()):
        sim.clear_fault(key)


async def scraper(
    base: str, session: aiohttp.ClientSession, stop: asyncio.Event, figures: Figures
) -> None:
    while not stop.is_set():
        try:
            async with session.get(f"{base}/metrics") as response:
                text = await response.text()
                if response.status != 200:
                    figures.scrape_failures.append(f"HTTP {response.status}")
                else:
                    parse_metrics(text)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding, reported below
            figures.scrape_failures.append(f"{type(exc).__name__}: {exc}"[:200])
        figures.scrapes += 1
        await asyncio.sleep(SCRAPE_EVERY)


async def test_soak_under_every_fault(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    # Access lines (one per request at both ends) and APScheduler's few lines per job run
    # would be nearly all the captured log, which pytest keeps in memory: at DEBUG they grow
    # the process by ~1 MB a second, which is the harness, not monitor. monitor's own
    # loggers stay at DEBUG.
    caplog.set_level(logging.WARNING, logger="aiohttp.access")
    caplog.set_level(logging.WARNING, logger="apscheduler")
    fds_at_start = open_fds()
    sim = simulator()
    upstream = await aiohttp_server(simulator_app(sim))
    orgs = [
        {"uuid": org_uuid(i), "name": f"soak-{i:03d}", "token_env": f"SOAK_{i:04d}"}
        for i in range(ORGS)
    ]
    config = make_config(
        base_url(upstream),
        orgs=orgs,
        environ={f"SOAK_{i:04d}": token(i) for i in range(ORGS)},
        upstream={"timeout_seconds": TIMEOUT},
        poll={"interval_seconds": 1, "max_interval_seconds": 2, "concurrency": 50},
    )
    server = await aiohttp_server(create_app(config))
    base = base_url(server)
    upstream_server = upstream.runner.server if upstream.runner else None
    assert upstream_server is not None

    def upstream_connections() -> int:
        return len(upstream_server.connections)

    figures = Figures()
    client_timeout = aiohttp.ClientTimeout(total=TIMEOUT + 5)
    async with aiohttp.ClientSession(timeout=client_timeout) as scrape_session:
        # Warm up: every org polled once, then the baseline.
        async def ready() -> bool:
            async with scrape_session.get(f"{base}/readyz") as response:
                return response.status == 200

        await until(ready, "every org's first poll", timeout=30)
        await asyncio.sleep(2)
        baseline = {"fds": open_fds(), "rss": rss_bytes(), "upstream": upstream_connections()}

        stop = asyncio.Event()
        started = time.monotonic()
        async with aiohttp.ClientSession(timeout=client_timeout) as load_session:
            tasks = [
                asyncio.ensure_future(worker(n, base, load_session, stop, figures))
                for n in range(WORKERS)
            ]
            tasks.append(asyncio.ensure_future(fault_cycler(sim, stop, figures)))
            tasks.append(asyncio.ensure_future(scraper(base, scrape_session, stop, figures)))
            await asyncio.sleep(LOAD_SECONDS)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        load_seconds = time.monotonic() - started

        # Load and faults are gone, polls go on. aiohttp reuses pooled connections in turn
        # (FIFO), so while 200 orgs are polled every second the pool keeps the size it grew
        # to (never past max_connections); it only shrinks once connections sit idle.
        await asyncio.sleep(2)
        after = {"fds": open_fds(), "rss": rss_bytes(), "upstream": upstream_connections()}
        async with scrape_session.get(f"{base}/metrics") as response:
            assert response.status == 200
            exposition = await response.text()

    # Then monitor stops (scheduler, polls, upstream session): every upstream connection
    # and every fd it opened must be gone, back to what the process had before it started.
    stop_started = time.time()
    await server.close()
    for _ in range(100):
        if upstream_connections() == 0:
            break
        await asyncio.sleep(0.1)
    upstream_after_stop = upstream_connections()
    await upstream.close()
    fds_after_stop = open_fds()
    for _ in range(50):
        if fds_after_stop <= fds_at_start + 3:
            break
        await asyncio.sleep(0.1)
        fds_after_stop = open_fds()
    stop_seconds = time.time() - stop_started

    samples = parse_metrics(exposition)
    polls = totals_by(samples, "claude_usage_polls_total", "result")
    proxied = totals_by(samples, "claude_proxy_requests_total", "code")
    errors = [
        f"{r.name} {r.levelname}: {r.getMessage()[:200]}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or any(mark in r.getMessage() for mark in ERROR_MARKS)
    ]
    report: dict[str, Any] = {
        "orgs": ORGS,
        "workers": WORKERS,
        "load_seconds": round(load_seconds, 1),
        "proxied_requests": figures.requests,
        "answers_by_status": dict(sorted(figures.statuses.items())),
        "proxy_503_upstream_busy": figures.busy,
        "cut_after_status_truncated_upstream": figures.cut_after_status,
        "unanswered": len(figures.unanswered),
        "later_than_timeout_plus_1s": len(figures.late),
        "max_latency_seconds": round(figures.max_latency, 3),
        "polls_by_result": {k: int(v) for k, v in sorted(polls.items())},
        "proxy_metric_by_code": {k: int(v) for k, v in sorted(proxied.items())},
        "scrapes": figures.scrapes,
        "scrape_failures": len(figures.scrape_failures),
        "fault_steps": dict(figures.faults_applied),
        "fds": {
            "at_start": fds_at_start,
            "polling_before_load": baseline["fds"],
            "polling_after_load": after["fds"],
            "after_stop": fds_after_stop,
        },
        "upstream_connections": {
            "polling_before_load": baseline["upstream"],
            "polling_after_load": after["upstream"],
            "after_stop": upstream_after_stop,
        },
        "rss_mib": {
            "before": round(baseline["rss"] / 2**20, 1),
            "after": round(after["rss"] / 2**20, 1),
            "growth": round((after["rss"] - baseline["rss"]) / 2**20, 1),
        },
        "stop_seconds": round(stop_seconds, 1),
        "error_log_lines": len(errors),
    }
    (tmp_path / "soak.json").write_text(json.dumps(report, indent=2))
    print("\nsoak figures:\n" + json.dumps(report, indent=2))
    print(f"(saved to {tmp_path / 'soak.json'})")

    assert not figures.unanswered, figures.unanswered[:10]
    assert not figures.late, f"answered later than timeout + 1 s: {figures.late[:10]}"
    assert figures.requests > 1000 and figures.statuses[200] > 0
    # Every answer is the upstream's or the proxy's 502/504; nothing was refused locally
    # (every request is valid) and no connection slot was ever short (503 upstream_busy).
    assert proxied.get("499", 0) == 0 and figures.busy == 0
    assert {502, 504} <= set(figures.statuses), figures.statuses
    assert not figures.scrape_failures, figures.scrape_failures[:10]
    assert figures.scrapes > 10
    assert not errors, errors[:10]
    every_kind = {name for name, _ in FAULTS}
    assert {key.split(" (")[0] for key in figures.faults_applied} == every_kind
    assert after["upstream"] <= 100, report["upstream_connections"]  # max_connections
    assert upstream_after_stop == 0, report["upstream_connections"]
    assert fds_after_stop <= fds_at_start + 3, report["fds"]
    assert after["rss"] - baseline["rss"] < 50 * 2**20, report["rss_mib"]
    for result in ("success", "timeout", "connection_error", "rate_limited", "server_error"):
        assert polls.get(result, 0) > 0, polls
    assert polls.get("invalid_response", 0) > 0 and polls.get("forbidden", 0) > 0, polls

    checked = await promtool_check_metrics(exposition)
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
