"""Prometheus metrics: the usage families rendered from the store, and monitor's own.

The usage families are built from the snapshots on every scrape (never `Gauge.set` on
shared gauges), so an org or window that disappears disappears from `/metrics`, and a
`null` upstream value is simply no sample.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable, Iterable, Iterator
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
from monitor.state import OrgState, OrgTarget, PollResult, ReloadStatus, UsageStore
from monitor.usage import UsageSnapshot

ORG_LABELS = ("org", "org_uuid")

CACHED = "Cached from the last poll of the usage endpoint."
PROXY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Orgs rendered between two yields to the event loop, so a scrape of many orgs never
# holds up the proxy for long.
ORGS_PER_SLICE = 100
JOIN_SLICE = 2000


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    help: str

    def header(self) -> str:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.type}\n"


UTILIZATION = Family(
    "claude_usage_utilization_ratio",
    "gauge",
    f"Utilization of the usage window, 0-1 (can exceed 1). {CACHED}",
)
RESETS_AT = Family(
    "claude_usage_resets_at_timestamp_seconds",
    "gauge",
    f"When the usage window resets, Unix seconds. {CACHED}",
)
EXTRA_ENABLED = Family(
    "claude_usage_extra_enabled", "gauge", f"1 if extra usage is enabled, else 0. {CACHED}"
)
EXTRA_LIMIT = Family(
    "claude_usage_extra_monthly_limit_credits",
    "gauge",
    f"Extra-usage monthly limit, in the upstream's credits (minor units). {CACHED}",
)
EXTRA_USED = Family(
    "claude_usage_extra_used_credits",
    "gauge",
    f"Extra-usage credits used this month (minor units). {CACHED}",
)
UP = Family("claude_usage_up", "gauge", "1 if the last poll of the usage endpoint succeeded.")
LAST_SUCCESS = Family(
    "claude_usage_last_success_timestamp_seconds",
    "gauge",
    "End of the last successful poll, Unix seconds.",
)
DURATION = Family(
    "claude_usage_poll_duration_seconds", "gauge", "How long the last poll took, in seconds."
)
POLLS = Family("claude_usage_polls_total", "counter", "Polls of the usage endpoint by result.")
NEXT_POLL = Family(
    "claude_usage_next_poll_timestamp_seconds",
    "gauge",
    "When the scheduler will poll this org next, Unix seconds.",
)
USAGE_FAMILIES = (
    UTILIZATION,
    RESETS_AT,
    EXTRA_ENABLED,
    EXTRA_LIMIT,
    EXTRA_USED,
    UP,
    LAST_SUCCESS,
    DURATION,
    POLLS,
    NEXT_POLL,
)
_SNAPSHOT_FAMILIES = 5  # the first five come from the snapshot, the rest from poll health


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    # repr() round-trips; the store only holds finite numbers (the parser drops the rest).
    return repr(float(value))


@dataclass(frozen=True)
class _Rendered:
    """One org's lines, one string per family, with what they were rendered from: they
    are rebuilt only when the state moved (a poll ended, the snapshot or target changed)."""

    target: OrgTarget
    labels: str
    snapshot: UsageSnapshot | None
    poll_end: float | None
    next_poll: float | None
    lines: tuple[str, ...]

    def fresh(self, state: OrgState) -> bool:
        return (
            self.snapshot is state.snapshot
            and self.target is state.target
            and self.poll_end == state.last_poll_end
            and self.next_poll == state.next_poll
        )


_POLL_RESULT_SUFFIXES = tuple((result, f',result="{result.value}"}} ') for result in PollResult)


def _snapshot_lines(labels: str, snapshot: UsageSnapshot | None) -> tuple[str, ...]:
    """The lines of the five families that come from the upstream's payload."""
    lines = ["", "", "", "", ""]
    if snapshot is None:
        return tuple(lines)
    ratio, resets = [], []
    for window in snapshot.windows:
        series = f'{{{labels},window="{_escape(window.name)}"}} '
        if window.utilization is not None:
            ratio.append(f"{UTILIZATION.name}{series}{_number(window.utilization)}\n")
        if window.resets_at is not None:
            resets.append(f"{RESETS_AT.name}{series}{_number(window.resets_at)}\n")
    lines[0], lines[1] = "".join(ratio), "".join(resets)
    extra = snapshot.extra
    if extra is not None:
        if extra.is_enabled is not None:
            enabled = "1.0" if extra.is_enabled else "0.0"
            lines[2] = f"{EXTRA_ENABLED.name}{{{labels}}} {enabled}\n"
        if extra.monthly_limit is not None:
            lines[3] = f"{EXTRA_LIMIT.name}{{{labels}}} {_number(extra.monthly_limit)}\n"
        if extra.used_credits is not None:
            lines[4] = f"{EXTRA_USED.name}{{{labels}}} {_number(extra.used_credits)}\n"
    return tuple(lines)


def _health_lines(labels: str, state: OrgState) -> tuple[str, ...]:
    """The lines of the five families that describe the polls themselves."""
    series = "{" + labels + "} "
    up = last_success = duration = next_poll = ""
    if state.last_result is not None:
        up = f"{UP.name}{series}{'1.0' if state.up else '0.0'}\n"
    if state.last_success is not None:
        last_success = f"{LAST_SUCCESS.name}{series}{_number(state.last_success)}\n"
    if state.duration is not None:
        duration = f"{DURATION.name}{series}{_number(state.duration)}\n"
    prefix = f"{POLLS.name}{{{labels}"
    polls = "".join(
        f"{prefix}{suffix}{state.results[result]}\n" for result, suffix in _POLL_RESULT_SUFFIXES
    )
    if state.next_poll is not None:
        next_poll = f"{NEXT_POLL.name}{series}{_number(state.next_poll)}\n"
    return (up, last_success, duration, polls, next_poll)


def render_org(state: OrgState, previous: _Rendered | None = None) -> _Rendered:
    """Every usage-family line of one org (empty strings where it has no series). What
    `previous` rendered is reused where it still holds: the labels while the target is the
    same, the payload's lines while the snapshot is equal (most polls change nothing)."""
    target, snapshot = state.target, state.snapshot
    if previous is not None and previous.target is target:
        labels = previous.labels
        same_usage = previous.snapshot is snapshot or previous.snapshot == snapshot
        usage = previous.lines[:5] if same_usage else _snapshot_lines(labels, snapshot)
    else:
        labels = f'org="{_escape(target.name)}",org_uuid="{_escape(target.uuid)}"'
        usage = _snapshot_lines(labels, snapshot)
    lines = usage + _health_lines(labels, state)
    return _Rendered(target, labels, snapshot, state.last_poll_end, state.next_poll, lines)


class UsageExposition:
    """Renders the usage families of SPEC section 4 from the store, in the text format.

    prometheus_client formats each sample in Python at scrape time (about 8 us a sample,
    seconds for 10,000 orgs); here each org's lines are kept rendered until its state
    moves, so a scrape mostly joins strings.
    """

    def __init__(self, store: UsageStore) -> None:
        self._store = store
        self._cache: dict[str, _Rendered] = {}

    def _add(self, state: OrgState, parts: list[list[str]]) -> None:
        rendered = self._cache.get(state.target.uuid)
        if rendered is None or not rendered.fresh(state):
            rendered = render_org(state, rendered)
            self._cache[state.target.uuid] = rendered
        for index, text in enumerate(rendered.lines):
            if text:
                parts[index].append(text)

    def _assemble(self, parts: list[list[str]]) -> str:
        out: list[str] = []
        for family, lines in zip(USAGE_FAMILIES, parts, strict=True):
            out.append(family.header())
            out.extend(lines)
        return "".join(out)

    def _forget_removed(self, states: list[OrgState]) -> None:
        if len(self._cache) > len(states):
            present = {state.target.uuid for state in states}
            for org_uuid in [u for u in self._cache if u not in present]:
                del self._cache[org_uuid]

    def render(self) -> str:
        states = list(self._store)
        parts: list[list[str]] = [[] for _ in USAGE_FAMILIES]
        for state in states:
            self._add(state, parts)
        self._forget_removed(states)
        return self._assemble(parts)

    async def render_chunks(self) -> list[bytes]:
        """`render` as encoded pieces, yielding to the event loop every ORGS_PER_SLICE orgs
        while gathering and every JOIN_SLICE lines while joining: no single step of a large
        scrape holds the loop for more than a few milliseconds."""
        states = list(self._store)
        parts: list[list[str]] = [[] for _ in USAGE_FAMILIES]
        for index, state in enumerate(states, start=1):
            self._add(state, parts)
            if index % ORGS_PER_SLICE == 0:
                await asyncio.sleep(0)
        self._forget_removed(states)
        chunks: list[bytes] = []
        for family, lines in zip(USAGE_FAMILIES, parts, strict=True):
            chunks.append(family.header().encode())
            for start in range(0, len(lines), JOIN_SLICE):
                chunks.append("".join(lines[start : start + JOIN_SLICE]).encode())
                await asyncio.sleep(0)
        return chunks


def _gauge(name: str, doc: str, labels: Iterable[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class MonitorCollector(Collector):
    """Monitor's own state: build and the outcome of the last config reload."""

    def __init__(self, reload: ReloadStatus) -> None:
        self._reload = reload

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        build = _gauge("claude_monitor_build_info", "Build of monitor; always 1.", ["version"])
        build.add_metric([__version__], 1.0)
        ok = _gauge(
            "claude_monitor_config_last_reload_successful",
            "1 if the last config load (start or SIGHUP) succeeded, else 0.",
            (),
        )
        ok.add_metric([], 1.0 if self._reload.successful else 0.0)
        when = _gauge(
            "claude_monitor_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully, Unix seconds.",
            (),
        )
        when.add_metric([], self._reload.last_success)
        yield from (build, ok, when)


def _add_org(
    state: OrgState,
    utilization: GaugeMetricFamily,
    resets: GaugeMetricFamily,
    enabled: GaugeMetricFamily,
    limit: GaugeMetricFamily,
    used: GaugeMetricFamily,
) -> None:
    snapshot = state.snapshot
    if snapshot is None:
        return
    labels = [state.target.name, state.target.uuid]
    for window in snapshot.windows:
        if window.utilization is not None:
            utilization.add_metric([*labels, window.name], window.utilization)
        if window.resets_at is not None:
            resets.add_metric([*labels, window.name], window.resets_at)
    extra = snapshot.extra
    if extra is None:
        return
    if extra.is_enabled is not None:
        enabled.add_metric(labels, 1.0 if extra.is_enabled else 0.0)
    if extra.monthly_limit is not None:
        limit.add_metric(labels, extra.monthly_limit)
    if extra.used_credits is not None:
        used.add_metric(labels, extra.used_credits)


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


def build_registry(reload: ReloadStatus) -> tuple[CollectorRegistry, ProxyMetrics]:
    """The app's own registry: proxy metrics, build info, reload status, process metrics.

    The global registry is not used, so an embedding process (tests run several apps)
    never sees duplicate series. The usage families come from `UsageExposition`.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(reload))
    ProcessCollector(registry=registry)
    return registry, ProxyMetrics.register(registry)


def render_metrics(exposition: UsageExposition, registry: CollectorRegistry) -> str:
    """The whole `/metrics` text: the usage families, then the registry's."""
    return exposition.render() + generate_latest(registry).decode()


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
