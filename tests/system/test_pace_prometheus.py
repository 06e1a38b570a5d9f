"""A real Prometheus scrapes the daemon with `prometheus/rules.yml` and `alerts.yml` loaded
as shipped, and records the pace the status page shows.

The simulator's `five_hour` window fills at 1.3 times an even pace, so its pace is 1.3 at
every moment; its `claude_code` window has no known length, so it gets no pace. The test
waits (bounded) for the recorded series, then compares them with the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.app import create_app
from monitor.simulator import Simulator, WindowSpec, simulator_app
from monitor.window_view import TIMES
from tests.conftest import MakeClient, MakeServer
from tests.support.config import make_config
from tests.support.paths import ROOT
from tests.support.prometheus import start_prometheus
from tests.support.tools import require_tool
from tests.support.upstream import ORG_A, TOKEN_A

RULE_FILES = [ROOT / "prometheus" / "rules.yml", ROOT / "prometheus" / "alerts.yml"]
HOUR = 3600.0


@pytest.mark.tool
async def test_prometheus_records_the_pace_the_status_page_shows(
    aiohttp_client: MakeClient, aiohttp_server: MakeServer, tmp_path: Path
) -> None:
    binary = require_tool("prometheus", "apt-get install prometheus")
    sim = Simulator()
    sim.add_org(
        ORG_A,
        "acme",
        plan="max",
        shape="oauth_2025",
        windows={
            "five_hour": WindowSpec.filling(5 * HOUR, 130.0, phase=0.4),
            "claude_code": WindowSpec.filling(5 * HOUR, 50.0, phase=0.4),
        },
    )
    sim.add_account(token=TOKEN_A, org_uuids=[ORG_A])
    upstream = await aiohttp_server(simulator_app(sim))
    orgs = [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"}]
    config = make_config(str(upstream.make_url("")).rstrip("/"), orgs)
    client = await aiohttp_client(create_app(config))

    prometheus = await start_prometheus(binary, f"127.0.0.1:{client.port}", tmp_path, RULE_FILES)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def recorded() -> list[dict[str, Any]]:
                return await prometheus.query(session, "claude_usage:pace_ratio")

            paces = await prometheus.wait_for("a recorded pace", recorded)
            expr = "claude_usage:projected_utilization_ratio"
            projected = await prometheus.query(session, expr)
    finally:
        await prometheus.stop()

    assert [p["metric"]["window"] for p in paces] == ["five_hour"]  # claude_code: no length
    assert paces[0]["metric"]["org"] == "acme"
    assert float(paces[0]["value"][1]) == pytest.approx(1.3, abs=0.005)
    assert float(projected[0]["value"][1]) == pytest.approx(1.3, abs=0.005)
    page = await (await client.get("/")).text()
    lines = re.findall(r'<p class="pace[^"]*">([^<]*)</p>', page)
    assert any(line.startswith(f"pace 1.3{TIMES} — at this rate 100% in ") for line in lines)
