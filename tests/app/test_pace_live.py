"""Pace, window lengths and recent history in the running app, polling the demo's simulator
on a test-driven clock: what `monitor demo` shows, what `/metrics` exports for the
recording rules, and what a relayed answer adds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.demo import demo_config
from monitor.simulator import demo_simulator, renew_once, simulator_app
from monitor.simulator.demo import ACME, GLOBEX, INITECH
from monitor.state import UsageStore
from monitor.window_view import TIMES
from tests.conftest import Client, MakeClient, MakeServer
from tests.support.clock import FakeClock
from tests.support.config import make_config
from tests.support.docs import readme_metrics
from tests.support.jobs import ManualJobs
from tests.support.metrics import scrape, value
from tests.support.observability import (
    PROMETHEUS_METRICS,
    metric_names_in_expressions,
    recorded_names,
)

MINUTE = 60.0
LENGTH = "claude_usage_window_length_seconds"


async def demo_app(
    aiohttp_server: MakeServer, driven: MakeClient, clock: FakeClock, tmp_path: Path
) -> tuple[Client, UsageStore]:
    """The demo's simulator and the daemon as `monitor demo` configures it, but polled at
    most every minute (and just after each reset), so hours go by quickly."""
    sim, credentials = demo_simulator(clock)
    server = await aiohttp_server(simulator_app(sim))
    url = str(server.make_url("")).rstrip("/")
    path = tmp_path / ".credentials.json"
    renew_once(sim, credentials.renewed.account_uuid, path, lifetime=24 * 3600)
    base = make_config(url, poll={"interval_seconds": 60, "max_interval_seconds": 60})
    store = UsageStore(clock)
    client = await driven(demo_config(credentials, url, path, base), store=store)
    return client, store


def pace_lines(page: str) -> list[str]:
    return re.findall(r'<p class="pace[^"]*">([^<]*)</p>', page)


def pace_by_window(page: str) -> dict[tuple[str, str], str]:
    """{(org uuid, window): its pace line} of the status page."""
    found = {}
    for block in re.findall(r'<li class="window">.*?</li>', page):
        name = re.search(r'id="org-([0-9a-f-]{36})-w\d+">([^<]+)</span>', block)
        pace = re.search(r'<p class="pace[^"]*">([^<]*)</p>', block)
        if name and pace:
            found[(name.group(1), name.group(2))] = pace.group(1)
    return found


def family_of(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


async def test_the_demo_shows_one_org_ahead_of_pace_and_one_behind(
    aiohttp_server: MakeServer,
    driven: MakeClient,
    clock: FakeClock,
    jobs: ManualJobs,
    tmp_path: Path,
) -> None:
    client, _ = await demo_app(aiohttp_server, driven, clock, tmp_path)
    await jobs.run_due()
    lines = pace_lines(await (await client.get("/")).text())
    # globex's five_hour: 45 % through (2h 45m left, to a microsecond) at 63 %
    ahead = f"pace 1.4{TIMES} — at this rate 100% in 1h 19m, before the reset in 2h 4[45]m"
    assert [line for line in lines if re.fullmatch(ahead, line)]
    assert f"pace 0.6{TIMES} — on pace to end at 60%" in lines  # initech's five_hour
    assert f"pace 0.75{TIMES} — on pace to end at 75%" in lines  # initech's seven_day
    # acme's windows last minutes: no length (so no pace) until two resets agree
    assert lines.count("pace unknown until two resets show the window's length") >= 3


async def test_lengths_are_learned_live_and_exported(
    aiohttp_server: MakeServer,
    driven: MakeClient,
    clock: FakeClock,
    jobs: ManualJobs,
    tmp_path: Path,
) -> None:
    client, store = await demo_app(aiohttp_server, driven, clock, tmp_path)
    await jobs.run_due()
    _, samples = await scrape(client)
    assert value(samples, LENGTH, org=GLOBEX.name, window="five_hour") == 5 * 3600
    assert value(samples, LENGTH, org=INITECH.name, window="seven_day_cowork") == 7 * 86400
    assert value(samples, LENGTH, org=ACME.name, window="claude_code") is None
    assert value(samples, LENGTH, org=INITECH.name, window="tangelo") is None

    await jobs.advance(12 * MINUTE)  # claude_code (5 min) and tangelo (4 min) reset twice
    _, samples = await scrape(client)
    assert value(samples, LENGTH, org=ACME.name, window="claude_code") == 300.0
    assert value(samples, LENGTH, org=INITECH.name, window="tangelo") == 240.0
    assert value(samples, LENGTH, org=ACME.name, window="projects") is None  # 15 min
    await jobs.advance(25 * MINUTE)
    text, samples = await scrape(client)
    assert value(samples, LENGTH, org=ACME.name, window="projects") == 900.0
    paces = pace_by_window(await (await client.get("/")).text())
    # claude_code's length is known now: it has a pace (0.85x as of each poll, less as
    # the minute since goes by) where it had none
    assert re.fullmatch(
        f"pace 0\\.[5-8]\\d?{TIMES} — on pace to end at [5-8]\\d%",
        paces[(ACME.uuid, "claude_code")],
    )

    acme = store.get(ACME.uuid)
    assert acme is not None
    code = acme.trends.get("claude_code")
    assert code is not None
    points = code.history.points()
    assert len(points) >= 2
    assert points[0][0] >= clock() - 5 * MINUTE  # only readings of the current cycle

    # Every series the recording rules, the alerts and the dashboard select is one this
    # running daemon exports (but the OTLP pushes' count: the demo pushes nowhere), and
    # one the README's metrics table lists.
    exported = set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))
    used = metric_names_in_expressions() - recorded_names() - PROMETHEUS_METRICS
    used -= {"claude_monitor_otlp_exports_total"}
    assert {family_of(name) for name in used} - exported == set()
    assert {family_of(name) for name in used} - set(readme_metrics()) == set()
    for name in ("claude_usage_utilization_ratio", "claude_usage_resets_at_timestamp_seconds"):
        assert samples[name]
    assert LENGTH in readme_metrics()


async def test_a_relayed_answer_adds_a_reading(
    aiohttp_server: MakeServer,
    driven: MakeClient,
    clock: FakeClock,
    jobs: ManualJobs,
    tmp_path: Path,
) -> None:
    client, store = await demo_app(aiohttp_server, driven, clock, tmp_path)
    await jobs.run_due()
    polled_at = clock()
    clock.advance(40)  # before the next poll
    relayed = await client.get(
        f"/api/organizations/{GLOBEX.uuid}/usage",
        headers={"Authorization": f"Bearer {GLOBEX.token}"},
    )
    assert relayed.status == 200
    state = store.get(GLOBEX.uuid)
    assert state is not None
    trend = state.trends.get("five_hour")
    assert trend is not None
    times = [t for t, _ in trend.history.points()]
    assert times == [polled_at, pytest.approx(polled_at + 40, abs=0.01)]
