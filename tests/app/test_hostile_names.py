"""Org names that need escaping, configured and discovered, served by the app over real
sockets: `/metrics` stays valid in the text format (promtool) and in OpenMetrics
(prometheus_client's strict parser), each name comes back as its label value, and the
status page shows each one escaped.

Bound (README, limits): label values, org names 128 characters; a discovered name is cut
at 128, a longer configured one refused.
"""

from __future__ import annotations

import html

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from monitor.simulator import Simulator, simulator_app
from tests.conftest import MakeClient, MakeServer
from tests.support.clock import FakeClock
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.tools import promtool_check_metrics
from tests.support.upstream import ORG_A, TOKEN_A, TOKEN_C, base_url

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
CONFIGURED = 'say "hi" \\ back\\slash\nnew line · ünïcødé 🚀 <script>&'
LONG = "n" * 100 + "<é" * 30  # 160 characters
DISCOVERED = {
    "0b7c1e9a-0000-4000-8000-000000000001": 'q"uo\\te\nline <b>bold</b> & ✓',
    "0b7c1e9a-0000-4000-8000-000000000002": "tab\tcr\rnul\x00esc\x1b[31m",
    "0b7c1e9a-0000-4000-8000-000000000003": LONG,
    "0b7c1e9a-0000-4000-8000-000000000004": "lone \ud800 surrogate",
}
# What each discovered name becomes as a label: cut at 128; a lone surrogate (which JSON's
# escapes can carry and UTF-8 cannot) replaced.
EXPECTED = {
    ORG_A: CONFIGURED,
    **DISCOVERED,
    "0b7c1e9a-0000-4000-8000-000000000003": LONG[:128],
    "0b7c1e9a-0000-4000-8000-000000000004": "lone \ufffd surrogate",
}


def simulator(clock: FakeClock) -> Simulator:
    sim = Simulator(clock)
    sim.add_org(ORG_A, "acme")
    for org_uuid, name in DISCOVERED.items():
        sim.add_org(org_uuid, name)
    sim.add_account(token=TOKEN_C, org_uuids=list(DISCOVERED))
    sim.add_account(token=TOKEN_A, org_uuids=[ORG_A])
    return sim


@pytest.mark.tool
async def test_names_that_need_escaping_keep_both_formats_valid_and_the_page_escaped(
    aiohttp_server: MakeServer, driven: MakeClient, jobs: ManualJobs, clock: FakeClock
) -> None:
    server: TestServer = await aiohttp_server(simulator_app(simulator(clock)))
    config = make_config(
        base_url(server),
        [{"uuid": ORG_A, "name": CONFIGURED, "token_env": "TOKEN_A"}],
        accounts=[{"name": "team", "token_env": "TOKEN_C"}],
    )
    client = await driven(config)
    await jobs.run_due()  # discovery, then every org's first poll
    await jobs.run_due()
    answers: dict[str, str] = {}
    for name, path, headers in (
        ("text", "/metrics", {}),
        ("openmetrics", "/metrics", {"Accept": OPENMETRICS}),
        ("page", "/", {}),
    ):
        response = await client.get(path, headers=headers)
        assert response.status == 200, (name, await response.text())
        answers[name] = await response.text()
    text, openmetrics, page = answers["text"], answers["openmetrics"], answers["page"]

    checked = await promtool_check_metrics(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    names: dict[str, str] = {}
    # prometheus_client leaves its parser unannotated; strict, it raises on anything invalid.
    for family in openmetrics_families(openmetrics):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            if sample.name == "claude_usage_up":
                names[sample.labels["org_uuid"]] = sample.labels["org"]
    assert names == EXPECTED

    for org_uuid, name in EXPECTED.items():
        shown = html.escape(name)
        assert shown in page, f"{org_uuid}: {shown!r} not on the status page"
    assert "<script>" not in page and "<b>bold" not in page
