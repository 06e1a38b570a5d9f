"""A local OTLP/HTTP receiver for the tests, and the pushed metrics read back as samples.

The receiver is an aiohttp app that decodes every request with `opentelemetry-proto`
(the real wire format: `ExportMetricsServiceRequest`), and answers as told.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from tests.support.metrics import Labels, Samples

METRICS_PATH = "/v1/metrics"


@dataclass
class Received:
    headers: dict[str, str]
    body: ExportMetricsServiceRequest

    def points(self) -> int:
        return sum(
            len(getattr(metric, metric.WhichOneof("data") or "").data_points)
            for resource in self.body.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        )


@dataclass
class OtlpReceiver:
    """Records every request; answers `status` (200 with an empty response by default)."""

    status: int = 200
    received: list[Received] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(METRICS_PATH, self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        data = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        body = ExportMetricsServiceRequest()
        body.ParseFromString(data)
        self.received.append(Received(dict(request.headers), body))
        if self.status != 200:
            return web.Response(status=self.status, text="refused by the test receiver")
        return web.Response(
            body=ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def metrics(self, since: int = 0) -> list[Metric]:
        """Every metric of the requests received from index `since` on."""
        return [
            metric
            for request in self.received[since:]
            for resource in request.body.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]


def attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in pairs}


def _labels(pairs: Iterable[KeyValue], **extra: str) -> Labels:
    return frozenset({**attributes(pairs), **extra}.items())


def pushed_samples(metrics: list[Metric]) -> Samples:
    """The pushed metrics as the samples `/metrics` would show for them (OpenMetrics):
    gauges and sums by name, a histogram as cumulative `_bucket`s, `_count` and `_sum`,
    and a cumulative series' start time as its `_created`."""
    samples: Samples = {}

    def add(name: str, labels: Labels, value: float) -> None:
        series = samples.setdefault(name, {})
        assert labels not in series, f"{name}{dict(labels)} pushed twice"
        series[labels] = value

    for metric in metrics:
        kind = metric.WhichOneof("data")
        if kind == "gauge":
            for point in metric.gauge.data_points:
                add(metric.name, _labels(point.attributes), point.as_double)
        elif kind == "sum":
            assert metric.sum.is_monotonic
            family = metric.name.removesuffix("_total")
            for point in metric.sum.data_points:
                add(metric.name, _labels(point.attributes), point.as_double)
                add(
                    f"{family}_created", _labels(point.attributes), point.start_time_unix_nano / 1e9
                )
        elif kind == "histogram":
            cumulative = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
            assert metric.histogram.aggregation_temporality == cumulative
            for hp in metric.histogram.data_points:
                assert not hp.HasField("min") and not hp.HasField("max")
                running = 0
                bounds = [*hp.explicit_bounds, float("inf")]
                for bound, count in zip(bounds, hp.bucket_counts, strict=True):
                    running += count
                    # prometheus_client leaves this unannotated; it returns a str.
                    le: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
                    add(f"{metric.name}_bucket", _labels(hp.attributes, le=le), float(running))
                add(f"{metric.name}_count", _labels(hp.attributes), float(hp.count))
                add(f"{metric.name}_sum", _labels(hp.attributes), hp.sum)
                add(f"{metric.name}_created", _labels(hp.attributes), hp.start_time_unix_nano / 1e9)
        else:
            raise AssertionError(f"{metric.name}: unexpected OTLP data {kind}")
    return samples


def openmetrics_samples(text: str) -> Samples:
    """Every sample of an OpenMetrics exposition, parsed by prometheus_client."""
    samples: Samples = {}
    # prometheus_client leaves its OpenMetrics parser unannotated.
    for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples
