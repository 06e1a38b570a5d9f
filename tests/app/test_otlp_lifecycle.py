"""The OTLP push over time: on its interval, across reloads, at stop, split into
requests, and in delta temporality for backends that take only that."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import monitor.otlp_export
from monitor.app import otlp_push, reload_config
from tests.conftest import Client, MakeServer
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.otlp import (
    METRICS_PATH,
    OtlpReceiver,
    attributes,
    openmetrics_samples,
    pushed_samples,
)
from tests.support.upstream import Upstream

Driven = Callable[..., Awaitable[Client]]
POLLS = "claude_usage_polls_total"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def served(aiohttp_server: MakeServer, receiver: OtlpReceiver) -> str:
    server = await aiohttp_server(receiver.app())
    return str(server.make_url(METRICS_PATH))


def config_with(upstream: Upstream, **otlp: Any) -> Any:
    return make_config(upstream.url, otlp={"timeout_seconds": 2, **otlp})


async def test_pushes_follow_the_interval_on_the_job_scheduler(
    upstream: Upstream, aiohttp_server: MakeServer, driven: Driven, jobs: ManualJobs
) -> None:
    receiver = OtlpReceiver()
    url = await served(aiohttp_server, receiver)
    await driven(config_with(upstream, endpoint=url, interval_seconds=30))
    await jobs.advance(29)
    assert receiver.received == []
    await jobs.advance(1)
    assert len(receiver.received) == 1
    await jobs.advance(60)
    assert len(receiver.received) == 3


async def test_a_reload_adds_moves_and_removes_the_push(
    upstream: Upstream, aiohttp_server: MakeServer, driven: Driven, jobs: ManualJobs
) -> None:
    first, second = OtlpReceiver(), OtlpReceiver()
    first_url, second_url = (
        await served(aiohttp_server, first),
        await served(aiohttp_server, second),
    )
    client = await driven(make_config(upstream.url))
    assert await otlp_push(client.app).push() is None  # no [otlp]: nothing to do
    text = await (await client.get("/metrics")).text()
    assert "claude_monitor_otlp_exports" not in text

    assert reload_config(client.app, lambda: config_with(upstream, endpoint=first_url))
    await jobs.advance(60)
    assert len(first.received) == 1
    reload_config(client.app, lambda: config_with(upstream, endpoint=second_url))
    await jobs.advance(60)
    assert (len(first.received), len(second.received)) == (1, 1)
    reload_config(client.app, lambda: make_config(upstream.url))
    await jobs.advance(600)
    assert (len(first.received), len(second.received)) == (1, 1)
    assert "otlp-push" not in jobs.jobs


async def test_stopping_the_app_pushes_the_last_values(
    upstream: Upstream, aiohttp_server: MakeServer, driven: Driven, jobs: ManualJobs
) -> None:
    receiver = OtlpReceiver()
    client = await driven(config_with(upstream, endpoint=await served(aiohttp_server, receiver)))
    await jobs.advance(5)
    await client.close()
    assert len(receiver.received) == 1
    assert pushed_samples(receiver.metrics())[POLLS]


async def test_a_large_exposition_is_split_into_requests(
    upstream: Upstream,
    aiohttp_server: MakeServer,
    driven: Driven,
    jobs: ManualJobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(monitor.otlp_export, "POINTS_PER_REQUEST", 7)
    receiver = OtlpReceiver()
    client = await driven(config_with(upstream, endpoint=await served(aiohttp_server, receiver)))
    await jobs.advance(5)
    scraped = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    before = openmetrics_samples(await scraped.text())
    pushed = await otlp_push(client.app).push()
    assert pushed is not None and pushed.requests == len(receiver.received) > 5
    sizes = [request.points() for request in receiver.received]
    assert max(sizes) == 7 and sum(sizes) == pushed.points
    received = pushed_samples(receiver.metrics())
    assert received[POLLS] == before[POLLS]  # a family split across requests, all of it


async def test_delta_temporality_sends_what_changed_since_the_last_delivered_push(
    upstream: Upstream, aiohttp_server: MakeServer, driven: Driven, jobs: ManualJobs
) -> None:
    receiver = OtlpReceiver()
    url = await served(aiohttp_server, receiver)
    client = await driven(config_with(upstream, endpoint=url, temporality="delta"))
    push = otlp_push(client.app)

    def polls_sent(since: int) -> dict[str, float]:
        (metric,) = [m for m in receiver.metrics(since) if m.name == POLLS]
        assert metric.sum.aggregation_temporality == 1  # delta
        sent = {}
        for point in metric.sum.data_points:
            labels = attributes(point.attributes)
            if labels["result"] == "success":
                sent[labels["org"]] = point.as_double
        return sent

    async def polls_now() -> dict[str, float]:
        scraped = await client.get("/metrics", headers={"Accept": OPENMETRICS})
        samples = openmetrics_samples(await scraped.text())
        return {
            dict(labels)["org"]: value
            for labels, value in samples[POLLS].items()
            if dict(labels)["result"] == "success"
        }

    async def push_now() -> int:
        """Push; the index of its first request (an old exporter retries a 500)."""
        mark = len(receiver.received)
        pushed = await push.push()
        assert pushed is not None
        return mark

    await jobs.advance(5)
    first = await polls_now()
    assert polls_sent(await push_now()) == first  # the first delta is the count so far
    await jobs.advance(5)
    second = await polls_now()
    assert polls_sent(await push_now()) == {org: second[org] - first[org] for org in first}
    receiver.status = 500
    await jobs.advance(5)
    await push_now()
    assert push.exports["rejected"] == 1
    receiver.status = 200
    await jobs.advance(5)
    fourth = await polls_now()
    last = await push_now()
    # What the refused push carried is not lost: it comes with the next one.
    assert polls_sent(last) == {org: fourth[org] - second[org] for org in second}
    # Gauges are the same in both temporalities.
    gauges = [m for m in receiver.metrics(last) if m.name == "claude_usage_up"]
    assert gauges and gauges[0].WhichOneof("data") == "gauge"
