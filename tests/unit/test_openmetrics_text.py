"""The OTLP push's parser reads `/metrics` exactly as prometheus_client's own parser does."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from monitor.openmetrics_text import ExpositionError, parse_families, parse_sample

label_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
numbers = st.floats(allow_nan=True, allow_infinity=True, width=64)


def ours(
    text: str, pieces: int = 1
) -> list[tuple[str, str, list[tuple[str, dict[str, str], float]]]]:
    data = text.encode()
    size = max(1, len(data) // pieces)
    chunks = [data[i : i + size] for i in range(0, len(data), size)]  # cut mid-line too
    return [(f.name, f.type, f.samples) for f in parse_families(chunks)]


def theirs(text: str) -> list[tuple[str, str, list[tuple[str, dict[str, str], float]]]]:
    return [
        (f.name, f.type, [(s.name, s.labels, s.value) for s in f.samples])
        # prometheus_client leaves its OpenMetrics parser unannotated.
        for f in text_string_to_metric_families(text)  # type: ignore[no-untyped-call]
    ]


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.tuples(label_values, label_values, numbers), min_size=1, max_size=6),
    help_text=st.text(max_size=30),
    pieces=st.integers(min_value=1, max_value=7),
)
def test_it_reads_what_prometheus_client_reads(
    values: list[tuple[str, str, float]], help_text: str, pieces: int
) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("g_ratio", help_text or "h", ["org", "window"], registry=registry)
    counter = Counter("c", "a counter", ["org", "window"], registry=registry)
    histogram = Histogram("h_seconds", "a histogram", ["org"], registry=registry)
    for org, window, number in values:
        gauge.labels(org, window).set(number)
        if math.isfinite(number):
            counter.labels(org, window).inc(abs(number))
            histogram.labels(org).observe(abs(number))
    text = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    assert same(ours(text, pieces), theirs(text))
    (gauge_family,) = [f for f in parse_families([text.encode()]) if f.name == "g_ratio"]
    assert gauge_family.help == (help_text or "h")


def test_the_usage_exposition_lines_parse() -> None:
    name, labels, value = parse_sample(
        'claude_usage_utilization_ratio{org="a\\"b\\\\c\\nd",org_uuid="u",window="w"} 0.25'
    )
    assert (name, labels, value) == (
        "claude_usage_utilization_ratio",
        {"org": 'a"b\\c\nd', "org_uuid": "u", "window": "w"},
        0.25,
    )
    assert parse_sample("claude_monitor_config_last_reload_successful 1.0 1700000000") == (
        "claude_monitor_config_last_reload_successful",
        {},
        1.0,
    )


@pytest.mark.parametrize("line", ['x{a="1"', "x{a=1} 2", 'x{a="1"}', "{} 1", 'x{a="1"}2'])
def test_lines_that_are_not_samples_are_refused(line: str) -> None:
    with pytest.raises((ExpositionError, ValueError)):
        parse_sample(line)
