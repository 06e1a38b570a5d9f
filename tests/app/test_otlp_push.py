"""`[otlp]`: the app pushes what `/metrics` shows to a local OTLP/HTTP receiver that
decodes the real wire format; failures are counted and logged, never fatal.

The app, the receiver and the simulator all run in-process over real sockets; each push
is driven by the test (`otlp_push(app).push()`), never waited for.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from monitor.app import otlp_push
from tests.conftest import Client, MakeServer
from tests.support.config import make_config
from tests.support.jobs import ManualJobs
from tests.support.metrics import Samples, parse_metrics
from tests.support.net import free_port
from tests.support.otlp import METRICS_PATH, OtlpReceiver, openmetrics_samples, pushed_samples
from tests.support.upstream import ORG_A, TOKEN_A, Upstream

Driven = Callable[..., Awaitable[Client]]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
OTLP_AUTH = "Basic b3RscC10ZXN0LXNlY3JldC1oZWFkZXI="  # never in a log
EXPORTS = "claude_monitor_otlp_exports_total"
RATIO = "claude_usage_utilization_ratio"
RESETS = "claude_usage_resets_at_timestamp_seconds"


async def receiver_url(aiohttp_server: MakeServer, receiver: OtlpReceiver) -> str:
    server = await aiohttp_server(receiver.app())
    return str(server.make_url(METRICS_PATH))


def otlp_config(upstream: Upstream, endpoint: str, **otlp: Any) -> Any:
    section = {"endpoint": endpoint, "timeout_seconds": 2, **otlp}
    environ = {"OTLP_AUTH": OTLP_AUTH}
    return make_config(upstream.url, otlp=section, environ=environ)


async def scrape_openmetrics(client: Client) -> Samples:
    response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.status == 200
    return openmetrics_samples(await response.text())


async def with_traffic(client: Client, jobs: ManualJobs) -> None:
    """Polls of every org, and proxied calls, so every family has series."""
    await jobs.advance(5)
    path = f"/api/organizations/{ORG_A}/usage"
    for _ in range(3):
        response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN_A}"})
        assert response.status == 200


def without_process(samples: Samples) -> Samples:
    # process_* move by themselves between two readings (CPU, memory): compared by series.
    return {name: series for name, series in samples.items() if not name.startswith("process_")}


async def test_pushed_values_equal_metrics_at_the_same_moment(
    upstream: Upstream,
    aiohttp_server: MakeServer,
    driven: Driven,
    jobs: ManualJobs,
) -> None:
    receiver = OtlpReceiver()
    client = await driven(otlp_config(upstream, await receiver_url(aiohttp_server, receiver)))
    await with_traffic(client, jobs)

    before = await scrape_openmetrics(client)
    pushed = await otlp_push(client.app).push()
    after = await scrape_openmetrics(client)

    assert pushed is not None and pushed.result == "success", pushed
    assert len(receiver.received) == pushed.requests == 1
    received = pushed_samples(receiver.metrics())
    # Counters without `_created` on /metrics start at the daemon's start: not a sample.
    received = {n: s for n, s in received.items() if not n.endswith("_created") or n in before}
    assert without_process(received) == without_process(before)
    assert {n: set(s) for n, s in received.items()} == {n: set(s) for n, s in before.items()}
    # Nothing moved meanwhile but the push's own counter.
    before[EXPORTS][frozenset({("result", "success")})] += 1
    assert without_process(after) == without_process(before)
    # A null upstream value is no point, as it is no sample: acme's `projects` window is
    # null, its `extra_usage` window has a utilization but no reset time.
    ratio, resets = received[RATIO], received[RESETS]
    assert window("projects") not in ratio and window("projects") not in resets
    assert window("extra_usage") in ratio and window("extra_usage") not in resets
    assert window("claude_code") in resets
    assert received["claude_usage_polls_total"]
    assert received["claude_proxy_request_duration_seconds_count"]


def window(name: str) -> frozenset[tuple[str, str]]:
    return frozenset({("org", "acme"), ("org_uuid", ORG_A), ("window", name)})


async def test_types_units_and_names_follow_metrics(
    upstream: Upstream, aiohttp_server: MakeServer, driven: Driven, jobs: ManualJobs
) -> None:
    receiver = OtlpReceiver()
    client = await driven(otlp_config(upstream, await receiver_url(aiohttp_server, receiver)))
    await with_traffic(client, jobs)
    await otlp_push(client.app).push()
    metrics = {m.name: m for m in receiver.metrics()}
    polls = metrics["claude_usage_polls_total"]
    assert polls.WhichOneof("data") == "sum" and polls.sum.is_monotonic
    assert polls.sum.aggregation_temporality == 2  # cumulative
    ratio = metrics["claude_usage_utilization_ratio"]
    assert (ratio.WhichOneof("data"), ratio.unit) == ("gauge", "1")
    assert "Cached from the last poll" in ratio.description
    duration = metrics["claude_proxy_request_duration_seconds"]
    assert (duration.WhichOneof("data"), duration.unit) == ("histogram", "s")
    assert metrics["claude_usage_up"].unit == ""


async def test_header_values_from_env_reach_the_wire_and_no_log(
    upstream: Upstream,
    aiohttp_server: MakeServer,
    driven: Driven,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = OtlpReceiver()
    headers = {"Authorization": {"env": "OTLP_AUTH"}}
    url = await receiver_url(aiohttp_server, receiver)
    client = await driven(otlp_config(upstream, url, headers=headers))
    await otlp_push(client.app).push()
    receiver.status = 500  # a failure is logged too: still without the header
    await otlp_push(client.app).push()
    # (exporters before 1.41 retry a 500: more requests, all with the header)
    assert len(receiver.received) >= 2
    assert {r.headers["Authorization"] for r in receiver.received} == {OTLP_AUTH}
    assert receiver.received[0].headers["Content-Type"] == "application/x-protobuf"
    assert "otlp push failed" in caplog.text
    assert OTLP_AUTH not in caplog.text
    metrics_text = await (await client.get("/metrics")).text()
    assert OTLP_AUTH.split()[1] not in caplog.text + metrics_text


async def test_resource_attributes_default_and_from_the_file(
    upstream: Upstream,
    aiohttp_server: MakeServer,
    driven: Driven,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=env")
    receiver = OtlpReceiver()
    url = await receiver_url(aiohttp_server, receiver)
    attributes = {"team": "platform", "region": "eu"}
    client = await driven(otlp_config(upstream, url, resource_attributes=attributes))
    await otlp_push(client.app).push()
    (request,) = receiver.received
    (resource_metrics,) = request.body.resource_metrics
    found = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
    assert found["service.name"] == "claude-monitor"  # monitor's default
    assert found["team"] == "platform"  # the file over the variable
    assert found["region"] == "eu"
    assert found["deployment.environment"] == "test"  # the variable where the file is silent
    assert found["service.instance.id"] == f"{socket.gethostname()}:4000"  # [server] port
    assert found["telemetry.sdk.name"] == "opentelemetry"
    (scope,) = resource_metrics.scope_metrics
    assert scope.scope.name == "monitor"


async def counted(client: Client) -> dict[str, float]:
    samples = parse_metrics(await (await client.get("/metrics")).text())
    return {dict(labels)["result"]: value for labels, value in samples[EXPORTS].items()}


async def test_a_receiver_answering_500_is_counted_and_logged_once(
    upstream: Upstream,
    aiohttp_server: MakeServer,
    driven: Driven,
    jobs: ManualJobs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = OtlpReceiver(status=500)
    client = await driven(otlp_config(upstream, await receiver_url(aiohttp_server, receiver)))
    push = otlp_push(client.app)
    results = [await push.push() for _ in range(3)]
    assert {(p.result, p.message) for p in results if p} == {
        ("rejected", "HTTP 500 Internal Server Error")
    }
    counts = await counted(client)
    assert counts == {"success": 0.0, "rejected": 3.0, "unreachable": 0.0, "error": 0.0}
    failures = [r for r in caplog.records if "otlp push failed" in r.getMessage()]
    assert len(failures) == 1  # the same failure again is not logged again
    assert "result=rejected: HTTP 500" in failures[0].getMessage()
    # Polling goes on meanwhile.
    await jobs.advance(5)
    samples = parse_metrics(await (await client.get("/metrics")).text())
    assert set(samples["claude_usage_up"].values()) == {1.0}
    receiver.status = 200
    assert (await push.push()).result == "success"  # type: ignore[union-attr]
    assert any("otlp push recovered" in r.getMessage() for r in caplog.records)


async def test_a_receiver_that_is_down_is_counted_and_polling_goes_on(
    upstream: Upstream, driven: Driven, jobs: ManualJobs
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}{METRICS_PATH}"  # nothing listens there
    client = await driven(otlp_config(upstream, endpoint, timeout_seconds=0.5))
    pushed = await otlp_push(client.app).push()
    assert pushed is not None and pushed.result == "unreachable"
    assert "Connection refused" in pushed.message
    await jobs.advance(5)
    samples = parse_metrics(await (await client.get("/metrics")).text())
    assert samples["claude_usage_up"]
    assert (await counted(client))["unreachable"] == 1.0
