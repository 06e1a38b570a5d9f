"""The OTLP push's OpenTelemetry side: `/metrics` text in, OTLP/HTTP requests out.

The only module that imports OpenTelemetry (the optional `otlp` extra); `monitor.otlp`
imports it when `[otlp]` is configured, never before.

**Why it cannot drift from `/metrics`.** The push does not read the store: it takes the
very OpenMetrics text the `/metrics` handler renders (same function, same exposition
cache, same registry), parses it back (`openmetrics_text`) and turns each family into the
SDK's data model, which the SDK's `OTLPMetricExporter` encodes and sends. A series, a
label, a null left out, a new family: whatever `/metrics` shows is what is pushed, with
the same names (a counter's `_total` kept, a histogram under its family name), the
labels as attributes, gauges as gauges, counters as monotonic sums, the histogram as an
explicit-bucket histogram, and `_created` as the start time.

**Its cost** is that of the SDK's data model, paid per point at every push, in a worker
thread: `python -m bench.otlp_cost` measured 0.05 s of CPU per push at 100 orgs, 0.9 s at
1,000 and 8.5 s at 10,000 (250,000 points; 2-core VM shared with other jobs), about
34 us a point: ~60% in the SDK's protobuf encoder, ~20% parsing, the rest building the
SDK's points. Reading the store directly would save the parsing only, and would be a
second rendering to keep equal to `/metrics`. For fleets that size, a Collector scraping
`/metrics` is cheaper.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from monitor import __version__
from monitor.openmetrics_text import Family, Labels, parse_families
from monitor.schema import OtlpConfig

# Data points per request: Datadog's intake takes at most 500 KB uncompressed, and a
# point with its attributes is ~100-400 bytes.
POINTS_PER_REQUEST = 1000
# The unit OTLP carries, from the unit suffix the Prometheus name already has (so a
# backend that appends units to names, like Prometheus' OTLP receiver, adds nothing).
UNIT_SUFFIXES = (("_seconds", "s"), ("_bytes", "By"), ("_ratio", "1"))
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")

Key = tuple[str, frozenset[tuple[str, str]]]


def unit_of(name: str, declared: str = "") -> str:
    if declared:
        return declared
    base = name.removesuffix("_total")
    for suffix, unit in UNIT_SUFFIXES:
        if base.endswith(suffix):
            return unit
    return ""


@dataclass
class _Sent:
    """What a delta push last delivered of one series: its cumulative values, and when."""

    values: tuple[float, ...]
    at_ns: int


class DeltaTracker:
    """Turns cumulative series into deltas since the last delivered push. A series is
    marked delivered only when the request carrying it succeeded, so a failed push is
    folded into the next one instead of lost."""

    def __init__(self) -> None:
        self._sent: dict[Key, _Sent] = {}

    def delta(
        self, key: Key, values: tuple[float, ...], start_ns: int
    ) -> tuple[tuple[float, ...], int]:
        """The values to send and their start time. A series that went down was reset:
        its whole value counts, from its own start."""
        sent = self._sent.get(key)
        if sent is None or any(v < s for v, s in zip(values, sent.values, strict=True)):
            return values, start_ns
        return tuple(v - s for v, s in zip(values, sent.values, strict=True)), sent.at_ns

    def delivered(self, updates: Iterable[tuple[Key, tuple[float, ...]]], now_ns: int) -> None:
        for key, values in updates:
            self._sent[key] = _Sent(values, now_ns)

    def keep_only(self, present: set[Key]) -> None:
        for key in [k for k in self._sent if k not in present]:
            del self._sent[key]


@dataclass
class Converted:
    """One family as OTLP: its points, and (delta only) each point's cumulative values."""

    name: str
    description: str
    unit: str
    kind: str  # gauge, sum, histogram
    points: list[Any] = field(default_factory=list)
    updates: list[tuple[Key, tuple[float, ...]]] = field(default_factory=list)


def _key(labels: Labels) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


class Converter:
    """`/metrics` families to OTLP points, cumulative (as `/metrics`) or delta."""

    def __init__(self, start_ns: int, delta: DeltaTracker | None) -> None:
        self.start_ns = start_ns  # for series without `_created`: the daemon's start
        self.delta = delta
        self.present: set[Key] = set()

    def family(self, family: Family, now_ns: int) -> Converted:
        if family.type in ("gauge", "unknown", "info"):
            return self._gauge(family, now_ns)
        if family.type == "counter":
            return self._counter(family, now_ns)
        if family.type == "histogram":
            return self._histogram(family, now_ns)
        raise ValueError(f"{family.name}: OTLP push has no mapping for type {family.type}")

    def _gauge(self, family: Family, now_ns: int) -> Converted:
        name = family.name + ("_info" if family.type == "info" else "")
        out = Converted(name, family.help, unit_of(name, family.unit), "gauge")
        out.points = [
            NumberDataPoint(labels, 0, now_ns, value) for _, labels, value in family.samples
        ]
        return out

    def _start_times(self, family: Family) -> dict[frozenset[tuple[str, str]], int]:
        created = family.name + "_created"
        return {_key(ls): int(v * 1e9) for n, ls, v in family.samples if n == created}

    def _cumulative(
        self, out: Converted, key: Key, values: tuple[float, ...], start: int
    ) -> tuple[tuple[float, ...], int]:
        if self.delta is None:
            return values, start
        self.present.add(key)
        out.updates.append((key, values))
        return self.delta.delta(key, values, start)

    def _counter(self, family: Family, now_ns: int) -> Converted:
        name = family.name + "_total"
        out = Converted(name, family.help, unit_of(name, family.unit), "sum")
        starts = self._start_times(family)
        for sample_name, labels, value in family.samples:
            if sample_name == name:
                key = _key(labels)
                start = starts.get(key, self.start_ns)
                (sent,), start = self._cumulative(out, (name, key), (value,), start)
                out.points.append(NumberDataPoint(labels, start, now_ns, sent))
        return out

    def _histogram(self, family: Family, now_ns: int) -> Converted:
        name = family.name
        out = Converted(name, family.help, unit_of(name, family.unit), "histogram")
        starts = self._start_times(family)
        series: dict[frozenset[tuple[str, str]], dict[str, Any]] = {}
        for sample_name, labels, value in family.samples:
            suffix = sample_name.removeprefix(name)
            if suffix not in ("_bucket", "_count", "_sum"):
                continue
            plain = {k: v for k, v in labels.items() if k != "le"}
            one = series.setdefault(_key(plain), {"labels": plain, "buckets": []})
            if suffix == "_bucket":
                one["buckets"].append((float(labels["le"]), value))
            else:
                one[suffix] = value
        for key, one in series.items():
            buckets = sorted(one["buckets"])
            counts = [int(c) for _, c in buckets]
            values = (*counts, float(one["_count"]), float(one["_sum"]))
            start = starts.get(key, self.start_ns)
            sent, start = self._cumulative(out, (name, key), values, start)
            cumulative = [int(c) for c in sent[: len(counts)]]
            per_bucket = [c - p for c, p in zip(cumulative, [0, *cumulative[:-1]], strict=True)]
            bounds = [le for le, _ in buckets if le != float("inf")]
            out.points.append(
                HistogramDataPoint(
                    attributes=one["labels"],
                    start_time_unix_nano=start,
                    time_unix_nano=now_ns,
                    count=int(sent[-2]),
                    sum=sent[-1],
                    bucket_counts=per_bucket,
                    explicit_bounds=bounds,
                    # Unknown to a Prometheus histogram: None leaves them off the wire.
                    min=None,  # type: ignore[arg-type]
                    max=None,  # type: ignore[arg-type]
                )
            )
        return out


def _metric(
    converted: Converted, points: Sequence[Any], temporality: AggregationTemporality
) -> Metric:
    data: Gauge | Sum | Histogram
    if converted.kind == "gauge":
        data = Gauge(data_points=points)
    elif converted.kind == "sum":
        data = Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=True)
    else:
        data = Histogram(data_points=points, aggregation_temporality=temporality)
    return Metric(converted.name, converted.description, converted.unit, data)


@dataclass
class Batch:
    metrics: list[Metric] = field(default_factory=list)
    updates: list[tuple[Key, tuple[float, ...]]] = field(default_factory=list)
    points: int = 0


def batches(
    families: Iterable[Converted], temporality: AggregationTemporality, limit: int
) -> Iterator[Batch]:
    """The families in requests of at most `limit` points, a large family split across
    several (the same metric name in each)."""
    batch = Batch()
    for converted in families:
        offset = 0
        while offset < len(converted.points):
            room = limit - batch.points
            points = converted.points[offset : offset + room]
            batch.metrics.append(_metric(converted, points, temporality))
            batch.updates.extend(converted.updates[offset : offset + room])
            batch.points += len(points)
            offset += len(points)
            if batch.points >= limit:
                yield batch
                batch = Batch()
    if batch.metrics:
        yield batch


@dataclass(frozen=True)
class PushOutcome:
    """How one push ended: `success`, `rejected` (the endpoint answered an error status),
    `unreachable` (no answer: refused, reset, DNS, TLS, timeout) or `error` (not sent)."""

    result: str
    message: str = ""
    points: int = 0
    requests: int = 0


class _RecordingSession(requests.Session):
    """The exporter's HTTP session, noting how its last request ended: the exporter only
    says success or failure, and the `result` label and the log line want the reason."""

    def __init__(self) -> None:
        super().__init__()
        self.last: requests.Response | Exception | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        try:
            response = super().send(request, **kwargs)
        except Exception as exc:
            self.last = exc
            raise
        self.last = response
        return response


def describe(last: requests.Response | Exception | None) -> PushOutcome:
    """The outcome of a failed request, without its headers or body."""
    if isinstance(last, requests.Response):
        return PushOutcome("rejected", f"HTTP {last.status_code} {last.reason or ''}".strip())
    if isinstance(last, Exception):
        if isinstance(last, requests.Timeout):
            return PushOutcome("unreachable", f"{type(last).__name__}: no answer in time")
        found = _ERRNO.search(str(last))  # e.g. "[Errno 111] Connection refused"
        return PushOutcome(
            "unreachable", f"{type(last).__name__}" + (f": {found[0]}" if found else "")
        )
    return PushOutcome("error", "the exporter sent nothing (over its size limit?)")


def resource(config: OtlpConfig, instance_id: str) -> Resource:
    """The push's resource: `[otlp] resource_attributes`, over the standard variables
    (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`), over monitor's defaults."""
    from_env = OTELResourceDetector().detect().attributes
    defaults = {
        "service.name": "claude-monitor",
        "service.version": __version__,
        "service.instance.id": instance_id,
    }
    attributes = {k: v for k, v in defaults.items() if k not in from_env}
    return Resource.create({**attributes, **config.resource_attributes})


def instance_id(port: int) -> str:
    """Where the daemon runs, as Prometheus' `instance` would say it: host and port."""
    return f"{socket.gethostname()}:{port}"


def _quiet_sdk_logs() -> None:
    # The exporter logs every failed attempt (and each retry) at ERROR or WARNING; monitor
    # counts every push and logs a failure once per change instead (`monitor.otlp`).
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)


class OtlpSender:
    """One `[otlp]` config's exporter. `push` runs in a worker thread, one at a time."""

    def __init__(self, config: OtlpConfig, *, instance: str, start_ns: int) -> None:
        _quiet_sdk_logs()
        self.config = config
        self.endpoint = config.push_endpoint
        self._session = _RecordingSession()
        self._exporter = OTLPMetricExporter(
            endpoint=self.endpoint,
            # Merged by the SDK over $OTEL_EXPORTER_OTLP_(METRICS_)HEADERS: the file wins.
            headers={name: h.value.get_secret_value() for name, h in config.headers.items()},
            timeout=config.timeout_seconds,
            session=self._session,
        )
        self._resource = resource(config, instance)
        self._scope = InstrumentationScope("monitor", __version__)
        delta = config.push_temporality == "delta"
        self._temporality = (
            AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
        )
        self._delta = DeltaTracker() if delta else None
        self._start_ns = start_ns

    def _data(self, batch: Batch) -> MetricsData:
        scope = ScopeMetrics(self._scope, batch.metrics, "")
        return MetricsData([ResourceMetrics(self._resource, [scope], "")])

    def push(self, chunks: Iterable[bytes], now_ns: int) -> PushOutcome:
        """Convert and send one exposition, family by family, in requests of at most
        POINTS_PER_REQUEST points; stop at the first request that fails."""
        converter = Converter(self._start_ns, self._delta)
        families = (converter.family(f, now_ns) for f in parse_families(chunks))
        points = requests_sent = 0
        for batch in batches(families, self._temporality, POINTS_PER_REQUEST):
            self._session.last = None
            requests_sent += 1
            try:
                result = self._exporter.export(self._data(batch))
            except requests.RequestException as exc:  # older exporters let these out
                result, self._session.last = MetricExportResult.FAILURE, exc
            if result is not MetricExportResult.SUCCESS:
                failed = describe(self._session.last)
                return PushOutcome(failed.result, failed.message, points, requests_sent)
            if self._delta is not None:
                self._delta.delivered(batch.updates, now_ns)
            points += batch.points
        if self._delta is not None:
            self._delta.keep_only(converter.present)
        return PushOutcome("success", "", points, requests_sent)

    def shutdown(self) -> None:
        self._exporter.shutdown()
