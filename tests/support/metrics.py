"""Reading `/metrics` in tests: parsed with prometheus_client's own parser."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Samples = dict[str, dict[Labels, float]]


def parse_metrics(text: str) -> Samples:
    """Every sample of an exposition: {sample name: {labels: value}}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


def org_labels(name: str, org_uuid: str, **more: str) -> Labels:
    """The labels of an org's series: `org`, `org_uuid` and any `more`."""
    return labels(org=name, org_uuid=org_uuid, **more)


def value(samples: Samples, name: str, **wanted: str) -> float | None:
    """The value of the one sample of `name` whose labels include `wanted`, or None."""
    found = [
        v for found_labels, v in samples.get(name, {}).items() if wanted.items() <= found_labels
    ]
    if len(found) > 1:
        raise AssertionError(f"{len(found)} samples of {name} match {wanted}")
    return found[0] if found else None


def org_uuids(samples: Samples) -> set[str]:
    return {v for series in samples.values() for ls in series for k, v in ls if k == "org_uuid"}


def metric_lines(text: str, name: str) -> list[str]:
    """The exposition's lines of one sample name, as text."""
    return [line for line in text.splitlines() if line.startswith((name + "{", name + " "))]


async def scrape(client: TestClient[Any, Any]) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    text = await response.text()
    return text, parse_metrics(text)


def totals_by(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of `name` summed by the value of one label ("" where it is absent)."""
    totals: dict[str, float] = {}
    for found_labels, v in samples.get(name, {}).items():
        key = dict(found_labels).get(label, "")
        totals[key] = totals.get(key, 0.0) + v
    return totals
