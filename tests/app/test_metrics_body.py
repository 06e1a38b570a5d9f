"""The body of /metrics as each scraper asks for it (text or OpenMetrics, gzipped or not,
GET or HEAD), and what the scrape-to-scrape caches keep: the usage families are reused
until a poll changes them, gzipped too; the registry's own families are always fresh."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import pytest
from aiohttp import ClientResponse

from monitor.state import UsageStore
from tests.conftest import Client, MakeClient
from tests.support.config import ORGS_AB, make_config
from tests.support.jobs import ManualJobs
from tests.support.metrics import org_labels, parse_metrics
from tests.support.upstream import AUTH_A, ORG_A, Upstream

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# (Accept, Accept-Encoding) as scrapers send them: Prometheus asks for both.
ASKS = {
    "text": ("", "identity"),
    "text, gzip": ("", "gzip"),
    "openmetrics": (OPENMETRICS, "identity"),
    "openmetrics, gzip": (OPENMETRICS, "gzip"),
}


@dataclass
class Scraped:
    """One answer of /metrics, its body as it came over the wire and decoded."""

    response: ClientResponse
    raw: bytes

    @property
    def text(self) -> str:
        gzipped = self.response.headers.get("Content-Encoding") == "gzip"
        return (gzip.decompress(self.raw) if gzipped else self.raw).decode()


async def scrape(client: Client, ask: str, method: str = "GET") -> Scraped:
    accept, encoding = ASKS[ask]
    headers = {"Accept-Encoding": encoding, **({"Accept": accept} if accept else {})}
    response = await client.request(method, "/metrics", headers=headers, auto_decompress=False)
    assert response.status == 200
    return Scraped(response, await response.read())


def usage_part(text: str) -> str:
    """The usage families: everything before the app registry's first family."""
    return text[: text.index("# HELP claude_monitor_build_info")]


@pytest.fixture
async def polled(upstream: Upstream, driven: MakeClient, jobs: ManualJobs) -> Client:
    client = await driven(make_config(upstream.url, ORGS_AB), store=UsageStore())
    assert await jobs.run_due() == 2
    return client


@pytest.mark.parametrize("ask", ASKS)
async def test_each_way_of_asking_gets_its_format_and_encoding(polled: Client, ask: str) -> None:
    scraped = await scrape(polled, ask)
    headers = scraped.response.headers
    openmetrics = ask.startswith("openmetrics")
    assert headers["Content-Type"].startswith(OPENMETRICS if openmetrics else "text/plain")
    assert headers.get("Content-Encoding") == ("gzip" if ask.endswith("gzip") else None)
    assert headers["Vary"] == "Accept, Accept-Encoding"
    assert int(headers["Content-Length"]) == len(scraped.raw)
    assert scraped.text.endswith("# EOF\n") == openmetrics
    assert 'claude_usage_up{org="acme"' in scraped.text


async def test_every_way_of_asking_shows_the_same_usage_families(polled: Client) -> None:
    texts = {ask: usage_part((await scrape(polled, ask)).text) for ask in ASKS}
    assert texts["text"] == texts["text, gzip"]
    assert texts["openmetrics"] == texts["openmetrics, gzip"]
    # The formats differ only in how a counter family is named in its header lines.
    assert texts["openmetrics"] == texts["text"].replace(
        "# HELP claude_usage_polls_total", "# HELP claude_usage_polls"
    ).replace("# TYPE claude_usage_polls_total", "# TYPE claude_usage_polls").replace(
        "# HELP claude_usage_credential_reloads_total", "# HELP claude_usage_credential_reloads"
    ).replace(
        "# TYPE claude_usage_credential_reloads_total", "# TYPE claude_usage_credential_reloads"
    ).replace("# HELP claude_usage_discoveries_total", "# HELP claude_usage_discoveries").replace(
        "# TYPE claude_usage_discoveries_total", "# TYPE claude_usage_discoveries"
    )


async def test_a_poll_shows_at_the_next_scrape_in_every_format_and_encoding(
    polled: Client, upstream: Upstream, jobs: ManualJobs
) -> None:
    ratio = org_labels("acme", ORG_A, window="claude_code")
    for ask in ASKS:  # every cache warm, gzipped ones included
        samples = parse_metrics((await scrape(polled, ask)).text)
        assert samples["claude_usage_utilization_ratio"][ratio] < 0.8
    upstream.sim.set_utilization(ORG_A, "claude_code", 87.5)  # climbs from there
    assert await jobs.advance(5) > 0
    for ask in ASKS:
        samples = parse_metrics((await scrape(polled, ask)).text)
        assert samples["claude_usage_utilization_ratio"][ratio] >= 0.875


@pytest.mark.parametrize("ask", ASKS)
async def test_the_registrys_families_are_current_at_every_scrape(polled: Client, ask: str) -> None:
    """With no poll in between, the usage families come from the cache; the proxy's
    counters, rendered after them, still move."""

    def proxied(text: str) -> float:
        samples = parse_metrics(text).get("claude_proxy_requests_total", {})
        return sum(samples.values())

    before = await scrape(polled, ask)
    assert (await polled.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)).status == 200
    after = await scrape(polled, ask)
    assert usage_part(after.text) == usage_part(before.text)
    assert proxied(after.text) == proxied(before.text) + 1


@pytest.mark.parametrize("ask", ASKS)
async def test_head_answers_the_headers_alone(polled: Client, ask: str) -> None:
    head = await scrape(polled, ask, method="HEAD")
    assert head.raw == b""
    assert head.response.headers["Vary"] == "Accept, Accept-Encoding"
