"""`/metrics`: the hand-rendered usage families, then the app's own registry (proxy
metrics, build info, reload status, process metrics), in the format the scraper asks for."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.config_source import ConfigSource
from monitor.exposition import Rendered, UsageExposition

# gzip at level 1: the exposition is repetitive text, so the fastest level already
# shrinks it ~16x (24 MB to 1.5 MB for 10,000 orgs).
GZIP_LEVEL = 1
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
# Bytes handed to the socket per write of a `/metrics` body.
WRITE_BATCH = 256 * 1024

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
    cache: Counter
    # The labelled children by (endpoint, method, code): `labels()` checks and joins its
    # arguments on every call, and the proxy observes every request. Bounded like the
    # series themselves (methods are labelled by `method_label`, codes are HTTP statuses).
    _children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = field(
        default_factory=dict, repr=False
    )

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
            cache=Counter(
                "claude_proxy_cache_requests",
                "Usage reads by route name and what the usage cache did: hit (answered from "
                "it, or from an identical read under way), miss (went upstream) or bypass "
                "(Cache-Control: no-cache). Counted only while the cache is on.",
                ["endpoint", "result"],
                registry=registry,
            ),
        )

    def observe(self, endpoint: str, method: str, code: int, seconds: float) -> None:
        key = (endpoint, method, code)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(endpoint, method, str(code)),
                self.duration.labels(endpoint),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_cache(self, endpoint: str, result: str) -> None:
        self.cache.labels(endpoint, result).inc()


def build_registry(config: ConfigSource) -> tuple[CollectorRegistry, ProxyMetrics]:
    """The app's own registry. The global registry is not used, so an embedding process
    (tests run several apps) never sees duplicate series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(config))
    ProcessCollector(registry=registry)
    return registry, ProxyMetrics.register(registry)


OPENMETRICS = "application/openmetrics-text"


def _weights(header: str) -> list[tuple[str, float]]:
    """`type;q=0.5, other` -> [("type", 0.5), ("other", 1.0)], names lower-cased."""
    weights = []
    for item in header.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if not name:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # a weight that cannot be read allows nothing
        weights.append((name.lower(), q))
    return weights


def wants_openmetrics(accept: str) -> bool:
    """Whether `Accept` prefers OpenMetrics to the text format, q-values honoured: its
    weight is above 0 and at least that of `text/plain` (or the wildcards standing in
    for it), as Prometheus's own `Accept` asks."""
    best = {OPENMETRICS: 0.0, "text/plain": 0.0}
    for name, q in _weights(accept):
        if name == OPENMETRICS:
            best[OPENMETRICS] = max(best[OPENMETRICS], q)
        elif name in ("text/plain", "text/*", "*/*"):
            best["text/plain"] = max(best["text/plain"], q)
    return best[OPENMETRICS] > 0 and best[OPENMETRICS] >= best["text/plain"]


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether `Accept-Encoding` allows gzip: named with q > 0, or `*` with q > 0 and gzip
    not refused by name."""
    weights = dict(_weights(accept_encoding))
    if "gzip" in weights:
        return weights["gzip"] > 0
    return weights.get("*", 0.0) > 0


async def render_exposition(
    exposition: UsageExposition, registry: CollectorRegistry, openmetrics: bool
) -> list[bytes]:
    """The body of `/metrics`, in pieces: the usage families, then the registry's. The
    OTLP push renders through here too, so it sends exactly what a scrape reads."""
    rendered = await exposition.render()
    return [*rendered.pieces(openmetrics), registry_text(registry, openmetrics)]


def registry_text(registry: CollectorRegistry, openmetrics: bool) -> bytes:
    """The registry's families; in OpenMetrics, then the one `# EOF` that ends the
    exposition."""
    if openmetrics:
        # prometheus_client leaves this function unannotated; it returns bytes.
        return openmetrics_latest(registry)  # type: ignore[no-any-return,no-untyped-call]
    return generate_latest(registry)


class PiecesPayload(Payload):
    """A response body handed over as its pieces and written in batches of about
    `WRITE_BATCH` bytes: the exposition of 10,000 orgs (24 MB) is never joined whole,
    and each write lets the event loop serve others while the socket drains."""

    def __init__(self, pieces: list[bytes], content_type: str) -> None:
        super().__init__(pieces, content_type=content_type)
        self._pieces = pieces
        self._size = sum(map(len, pieces))

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._pieces).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        batch: list[bytes] = []
        size = 0
        for piece in self._pieces:
            batch.append(piece)
            size += len(piece)
            if size >= WRITE_BATCH:
                await writer.write(b"".join(batch))
                batch, size = [], 0
        if batch:
            await writer.write(b"".join(batch))


@dataclass(frozen=True)
class _Gzipped:
    """The usage families of one render, gzipped, and the compressor that wrote them,
    which a copy of finishes with the registry's part at each scrape."""

    key: int
    head: list[bytes]
    compressor: zlib._Compress


def _gzip_start(pieces: list[bytes]) -> tuple[list[bytes], zlib._Compress]:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    head = [compressor.compress(piece) for piece in pieces]
    return [chunk for chunk in head if chunk], compressor


class MetricsEndpoint:
    """`/metrics`, negotiated as Prometheus does it: OpenMetrics 1.0 when `Accept` asks for
    it, the text format otherwise; gzipped when `Accept-Encoding` allows it.

    The usage families come from the exposition's block cache, and their gzipped form is
    kept per format until the exposition's text changes: a scrape with nothing new only
    renders the registry's part and compresses that. Compressing the usage families
    runs in a thread (zlib releases the GIL), so a large scrape does not stall the proxy.
    """

    def __init__(self, exposition: UsageExposition, registry: CollectorRegistry) -> None:
        self._exposition = exposition
        self._registry = registry
        self._gzipped: dict[bool, _Gzipped] = {}
        self._lock = asyncio.Lock()  # one compression of the usage families at a time

    async def handle(self, request: web.Request) -> web.Response:
        openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
        compress = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST
        headers = {"Content-Type": content_type}
        if compress:
            headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept, Accept-Encoding"
        rendered = await self._exposition.render()
        tail = registry_text(self._registry, openmetrics)
        if compress:
            gzipped = await self._gzip(rendered, openmetrics)
            finish = gzipped.compressor.copy()
            pieces = [*gzipped.head, finish.compress(tail) + finish.flush()]
        else:
            pieces = [*rendered.pieces(openmetrics), tail]
        return web.Response(body=PiecesPayload(pieces, content_type), headers=headers)

    async def _gzip(self, rendered: Rendered, openmetrics: bool) -> _Gzipped:
        async with self._lock:
            gzipped = self._gzipped.get(openmetrics)
            if gzipped is None or gzipped.key != rendered.key:
                pieces = rendered.pieces(openmetrics)
                head, compressor = await asyncio.to_thread(_gzip_start, pieces)
                gzipped = _Gzipped(rendered.key, head, compressor)
                self._gzipped[openmetrics] = gzipped
            return gzipped


def metrics_handler(
    exposition: UsageExposition, registry: CollectorRegistry
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The `/metrics` handler (see `MetricsEndpoint`)."""
    return MetricsEndpoint(exposition, registry).handle
