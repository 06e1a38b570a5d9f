"""`python -m bench --tiny` runs every scenario end to end and writes a complete result
file. Times are not asserted: this checks the harness, not the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT
from tests.support.process import untraced_environ

SCENARIOS = ("proxy", "isolation", "poll_scaling", "scrape_cost", "memory")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def measured_or_skipped(row: dict[str, Any], keys: tuple[str, ...]) -> bool:
    if "skipped" in row:
        return isinstance(row["skipped"], str) and row["skipped"].startswith("skipped:")
    return all(is_number(row.get(key)) for key in keys)


# The bench checks its harness, not monitor's lines: it runs untraced, its processes too.
@pytest.mark.untraced
def test_tiny_run_writes_a_complete_result_file(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out)],
        cwd=ROOT,
        env=untraced_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| target | conns | req/s |" in done.stdout  # the Markdown table
    result = json.loads(out.read_text())

    assert result["mode"] == "tiny"
    assert set(SCENARIOS) <= set(result["scenarios"])
    s = result["scenarios"]

    targets = {row["target"] for row in s["proxy"]["rows"]}
    assert targets == {"direct", "monitor", "nginx"}
    for row in s["proxy"]["rows"]:
        assert measured_or_skipped(row, ("rps", "p50_ms", "p99_ms")), row
    for key in ("monitor_vs_direct_rps", "added_p50_ms_vs_direct"):
        assert is_number(s["proxy"]["ratios"][key])
    nginx_ratio = s["proxy"]["ratios"]["monitor_vs_nginx_rps"]
    assert is_number(nginx_ratio) or str(nginx_ratio).startswith("skipped:")

    iso = s["isolation"]
    assert is_number(iso["p99_ratio"])
    for state in ("quiet", "scraping"):
        assert measured_or_skipped(iso[state], ("rps", "p50_ms", "p99_ms"))

    assert s["poll_scaling"]["rows"]
    for row in s["poll_scaling"]["rows"]:
        assert measured_or_skipped(row, ("orgs", "cycle_s", "ideal_s", "ratio", "cpu_ms_per_poll"))
        assert row["polls"] >= row["orgs"]
    assert s["scrape_cost"]["rows"]
    for row in s["scrape_cost"]["rows"]:
        assert measured_or_skipped(row, ("orgs", "samples", "text_ms", "text_bytes"))
        assert row["samples"] > 0
    assert len(s["memory"]["rows"]) == 2
    for row in s["memory"]["rows"]:
        assert measured_or_skipped(row, ("orgs", "rss_mb"))

    assert result["targets"]
    for target in result["targets"]:
        assert set(target) >= {"target", "value", "limit", "met"}
    assert result["machine"]["cores"]
