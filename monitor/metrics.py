"""Prometheus metrics: a collector that renders the store at scrape time, and the proxy's own.

The usage families are built from the snapshots on every scrape (never `Gauge.set` on
shared gauges), so an org or window that disappears disappears from `/metrics`, and a
`null` upstream value is simply no sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.state import OrgState, PollResult, ReloadStatus, UsageStore

ORG_LABELS = ("org", "org_uuid")
CACHED = "Cached from the last poll of the usage endpoint."
PROXY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _gauge(name: str, doc: str, labels: Iterable[str] = ORG_LABELS) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class UsageCollector(Collector):
    def __init__(self, store: UsageStore) -> None:
        self._store = store

    def describe(self) -> list[Metric]:
        # Registering must not render the store; the names are fixed anyway.
        return []

    def collect(self) -> Iterator[Metric]:
        window_labels = (*ORG_LABELS, "window")
        utilization = _gauge(
            "claude_usage_utilization_ratio",
            f"Utilization of the usage window, 0-1 (can exceed 1). {CACHED}",
            window_labels,
        )
        resets = _gauge(
            "claude_usage_resets_at_timestamp_seconds",
            f"When the usage window resets, Unix seconds. {CACHED}",
            window_labels,
        )
        enabled = _gauge(
            "claude_usage_extra_enabled", f"1 if extra usage is enabled, else 0. {CACHED}"
        )
        limit = _gauge(
            "claude_usage_extra_monthly_limit_credits",
            f"Extra-usage monthly limit, in the upstream's credits (minor units). {CACHED}",
        )
        used = _gauge(
            "claude_usage_extra_used_credits",
            f"Extra-usage credits used this month (minor units). {CACHED}",
        )
        up = _gauge("claude_usage_up", "1 if the last poll of the usage endpoint succeeded.")
        last_success = _gauge(
            "claude_usage_last_success_timestamp_seconds",
            "End of the last successful poll, Unix seconds.",
        )
        duration = _gauge(
            "claude_usage_poll_duration_seconds", "How long the last poll took, in seconds."
        )
        polls = CounterMetricFamily(
            "claude_usage_polls",
            "Polls of the usage endpoint by result.",
            labels=[*ORG_LABELS, "result"],
        )
        next_poll = _gauge(
            "claude_usage_next_poll_timestamp_seconds",
            "When the scheduler will poll this org next, Unix seconds.",
        )
        for state in self._store:
            _add_org(state, utilization, resets, enabled, limit, used)
            labels = [state.target.name, state.target.uuid]
            if state.last_result is not None:
                up.add_metric(labels, 1.0 if state.up else 0.0)
            if state.last_success is not None:
                last_success.add_metric(labels, state.last_success)
            if state.duration is not None:
                duration.add_metric(labels, state.duration)
            if state.next_poll is not None:
                next_poll.add_metric(labels, state.next_poll)
            for result in PollResult:
                polls.add_metric([*labels, result.value], float(state.results[result]))
        yield from (utilization, resets, enabled, limit, used, up, last_success, duration)
        yield from (polls, next_poll)


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


def build_registry(
    store: UsageStore, reload: ReloadStatus
) -> tuple[CollectorRegistry, ProxyMetrics]:
    """The app's own registry: usage from the store, proxy counters, build info.

    No process/platform collectors: the global registry is not used, so an embedding
    process (tests run several apps) never sees duplicate series.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(store))
    registry.register(MonitorCollector(reload))
    return registry, ProxyMetrics.register(registry)
