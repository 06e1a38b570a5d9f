"""promtool checks the exposition of a running app: usage, poll health of a failing org,
the proxy's series and monitor's own."""

from __future__ import annotations

import pytest

from monitor.simulator import Fault
from tests.conftest import MakeClient
from tests.support.config import ORGS_ABC, make_config
from tests.support.jobs import ManualJobs
from tests.support.tools import promtool_check_metrics
from tests.support.upstream import AUTH_A, ORG_A, ORG_C, Upstream


@pytest.mark.tool
async def test_the_exposition_passes_promtool(
    upstream: Upstream, driven: MakeClient, jobs: ManualJobs
) -> None:
    upstream.sim.set_fault(ORG_C, Fault(status=401))
    client = await driven(make_config(upstream.url, ORGS_ABC))
    assert await jobs.run_due() == 3
    proxied = await client.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)
    assert proxied.status == 200
    text = await (await client.get("/metrics")).text()
    assert "claude_proxy_requests_total{" in text
    checked = await promtool_check_metrics(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == ""
    assert checked.stderr.strip() == ""
