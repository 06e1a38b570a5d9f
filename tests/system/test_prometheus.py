"""End to end: a real Prometheus scrapes the daemon and evaluates the shipped alert rules.

The daemon polls the simulator every second; Prometheus scrapes and evaluates every second
with `prometheus/alerts.yml` loaded as shipped. The test waits (bounded) for the value the
simulator was told to report, then pushes an org to 97 % and waits for the critical window
alert to become pending (its `for:` is minutes long; pending proves the rule matched).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import MakeClient
from tests.support.config import make_config
from tests.support.paths import ROOT
from tests.support.prometheus import start_prometheus
from tests.support.tools import require_tool
from tests.support.upstream import ORG_A, Upstream

ALERTS = ROOT / "prometheus" / "alerts.yml"
CRITICAL = re.compile(r"ClaudeUsage.*Critical")


def utilization(answer: Any, org_uuid: str, window: str) -> float | None:
    if not answer or answer.get("status") != "success":
        return None
    for series in answer["data"]["result"]:
        labels = series["metric"]
        if labels.get("org_uuid") == org_uuid and labels.get("window") == window:
            return float(series["value"][1])
    return None


def critical_alert(answer: Any, org_uuid: str) -> dict[str, Any] | None:
    if not answer or answer.get("status") != "success":
        return None
    for alert in answer["data"]["alerts"]:
        labels = alert["labels"]
        if (
            CRITICAL.fullmatch(labels.get("alertname", ""))
            and labels.get("org_uuid") == org_uuid
            and alert["state"] in ("pending", "firing")
        ):
            found: dict[str, Any] = alert
            return found
    return None


@pytest.mark.tool
async def test_prometheus_scrapes_the_daemon_and_the_critical_alert_goes_pending(
    make_client: MakeClient, upstream: Upstream, tmp_path: Path
) -> None:
    """On the real APScheduler, polling every second, scraped every second."""
    binary = require_tool("prometheus", "apt-get install prometheus")
    assert ALERTS.is_file()
    upstream.sim.set_utilization(ORG_A, "claude_code", 42.0)
    client = await make_client(make_config(upstream.url))
    target = f"127.0.0.1:{client.port}"

    prometheus = await start_prometheus(binary, target, tmp_path, [ALERTS])
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            query = f'claude_usage_utilization_ratio{{org_uuid="{ORG_A}",window="claude_code"}}'

            async def scraped() -> float | None:
                answer = await prometheus.get(session, "/api/v1/query", query=query)
                return utilization(answer, ORG_A, "claude_code")

            value = await prometheus.wait_for("the first scraped utilization", scraped)
            # 42 % set on the simulator, whose clock (the test's) stands still
            assert value == pytest.approx(0.42, abs=0.005)

            async def rules_loaded() -> bool:
                answer = await prometheus.get(session, "/api/v1/rules")
                names = [
                    rule["name"]
                    for group in (answer or {}).get("data", {}).get("groups", [])
                    for rule in group["rules"]
                ]
                return any(CRITICAL.fullmatch(name) for name in names)

            await prometheus.wait_for("the shipped rules to load", rules_loaded)
            no_alert = await prometheus.get(session, "/api/v1/alerts")
            assert critical_alert(no_alert, ORG_A) is None

            upstream.sim.set_utilization(ORG_A, "claude_code", 97.0)

            async def alerting() -> dict[str, Any] | None:
                return critical_alert(await prometheus.get(session, "/api/v1/alerts"), ORG_A)

            alert = await prometheus.wait_for("the critical alert", alerting)
            assert alert["labels"]["window"] == "claude_code"
            assert alert["labels"]["org"] == "acme"
            assert alert["labels"]["severity"] == "critical"
            assert float(alert["value"]) >= 0.95
            assert "acme" in alert["annotations"]["summary"]
    finally:
        await prometheus.stop()
    assert prometheus.process.returncode is not None
