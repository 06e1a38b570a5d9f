"""`/metrics`: the hand-rendered usage families, then the app's own registry (proxy
metrics, build info, reload status, process metrics)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.config_source import ConfigSource
from monitor.exposition import UsageExposition

PROXY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MonitorCollector(Collector):
    """Monitor's own state: build and the outcome of the last config (re)load."""

    def __init__(self, config: ConfigSource) -> None:
        self._config = config

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "claude_monitor_build_info", "Build of monitor; always 1.", labels=["version"]
        )
        build.add_metric([__version__], 1.0)
        ok = GaugeMetricFamily(
            "claude_monitor_config_last_reload_successful",
            "1 if the last config load (start or SIGHUP) succeeded, else 0.",
        )
        ok.add_metric([], 1.0 if self._config.reload_successful else 0.0)
        when = GaugeMetricFamily(
            "claude_monitor_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully, Unix seconds.",
        )
        when.add_metric([], self._config.last_success)
        yield from (build, ok, when)


@dataclass(frozen=True)
class ProxyMetrics:
    requests: Counter
    duration: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ProxyMetrics:
        return cls(
            requests=Counter(
                "claude_proxy_requests",
                "Proxied requests by route name, method and final status code.",
                ["endpoint", "method", "code"],
                registry=registry,
            ),
            duration=Histogram(
                "claude_proxy_request_duration_seconds",
                "Time from request to last byte of proxied requests, by route name.",
                ["endpoint"],
                buckets=PROXY_BUCKETS,
                registry=registry,
            ),
        )

    def observe(self, endpoint: str, method: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(code)).inc()
        self.duration.labels(endpoint).observe(seconds)


def build_registry(config: ConfigSource) -> tuple[CollectorRegistry, ProxyMetrics]:
    """The app's own registry. The global registry is not used, so an embedding process
    (tests run several apps) never sees duplicate series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(config))
    ProcessCollector(registry=registry)
    return registry, ProxyMetrics.register(registry)


def _body(chunks: list[bytes], compress: bool) -> bytes:
    body = b"".join(chunks)
    return gzip.compress(body, compresslevel=1) if compress else body


def metrics_handler(
    exposition: UsageExposition, registry: CollectorRegistry
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`/metrics` in the Prometheus text format, gzipped when the scraper accepts it.

    Rendering yields to the event loop between slices of orgs and compression runs in a
    thread (zlib releases the GIL), so a large scrape does not stall proxied requests.
    """

    async def handle(request: web.Request) -> web.Response:
        chunks = await exposition.render_chunks()
        chunks.append(generate_latest(registry))
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        compress = "gzip" in request.headers.get("Accept-Encoding", "")
        if compress:
            headers["Content-Encoding"] = "gzip"
        # Joining megabytes and zlib both run in a thread (zlib releases the GIL).
        body = await asyncio.to_thread(_body, chunks, compress)
        return web.Response(body=body, headers=headers)

    return handle
