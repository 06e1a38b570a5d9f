"""The status page over HTTP, from an app polling the simulator (time driven by the test)."""

from __future__ import annotations

from monitor.simulator import Fault
from monitor.state import UsageStore
from tests.conftest import MakeClient, MakeProxy
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.status_page import Page
from tests.support.upstream import ORG_A, ORG_B, Upstream


def windows_with_value(store: UsageStore) -> int:
    return sum(
        1
        for state in store
        if state.snapshot is not None
        for window in state.snapshot.windows
        if window.utilization is not None
    )


async def test_status_page_over_http(
    driven: MakeClient, jobs: ManualJobs, upstream: Upstream
) -> None:
    upstream.sim.set_fault(ORG_B, Fault(status=429, retry_after="0"))
    upstream.sim.set_utilization(ORG_A, "claude_code", 97.0)
    store = UsageStore()
    client = await driven(make_config(upstream.url), store=store)
    await jobs.run_due()
    assert (await client.get("/readyz")).status == 200

    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    page = Page(await response.text())
    assert page.find("meta", **{"http-equiv": "refresh"}) == []
    assert "acme" in page.text
    assert "Last poll: success" in page.text
    assert "failed: rate_limited" in page.text
    assert "HTTP 429" in page.text
    bars = page.bars()
    assert len(bars) == windows_with_value(store) > 0
    claude_code = next(bar for bar in bars if "critical" in bar["class"].split())
    assert float(claude_code["value"]) >= 97.0
    assert "critical" in claude_code["aria-valuetext"]
    assert page.find("section", **{"class": "org failing"})
    assert "beta failing" in page.text  # the org's health in a word, not only in red

    reloading = Page(await (await client.get("/?refresh=on")).text())
    assert reloading.find("meta", **{"http-equiv": "refresh"})[0]["content"] == "5"
    assert "This page reloads every 5 s." in reloading.text
    assert len(reloading.bars()) == len(bars)


async def test_status_page_before_the_first_poll(make_proxy: MakeProxy, upstream: Upstream) -> None:
    client = await make_proxy(make_config(upstream.url))
    response = await client.get("/")
    assert response.status == 200
    text = Page(await response.text()).text
    assert text.count("waiting for first poll") == 2
