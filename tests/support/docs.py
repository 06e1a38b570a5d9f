"""What the README documents, read from the README itself, so tests check the code and the
docs against each other."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from tests.support.paths import ROOT

README = ROOT / "README.md"

_ROW = re.compile(r"^\| `(?P<name>\w+)` \| (?P<type>\w+) \|(?P<labels>[\w, ]*)\| [^|]+ \|$")


@dataclass(frozen=True)
class DocumentedMetric:
    name: str
    type: str  # gauge, counter or histogram
    labels: tuple[str, ...]


@cache
def readme_metrics() -> dict[str, DocumentedMetric]:
    """The rows of the README's metrics table (under `## Metrics`), in order."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    found: dict[str, DocumentedMetric] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            labels = tuple(label.strip() for label in match["labels"].split(",") if label.strip())
            found[match["name"]] = DocumentedMetric(match["name"], match["type"], labels)
    if not found:
        raise AssertionError("no metrics table under '## Metrics' in README.md")
    return found


def usage_series() -> tuple[str, ...]:
    """The per-org series (labelled `org_uuid`), in the README's order."""
    return tuple(m.name for m in readme_metrics().values() if "org_uuid" in m.labels)


def histogram_series(name: str) -> set[str]:
    """The sample names a histogram is exposed as."""
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
