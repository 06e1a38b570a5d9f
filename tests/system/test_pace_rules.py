"""The recording rules of `prometheus/rules.yml` and `monitor.pace` give the same pace.

The status page and `monitor usage` compute the pace in Python; Prometheus computes it
with the recording rules. Here promtool evaluates the rules over a grid of windows
(lengths, how far in, utilization from 0 to over 100 %) and must find, bit for bit, the
pace Python finds, and no sample where Python finds none.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.pace import window_pace
from tests.support.tools import require_tool

RULES = Path(__file__).resolve().parent.parent.parent / "prometheus" / "rules.yml"
LENGTHS = (600.0, 18000.0, 604800.0, 20 * 3600.0)
# How far into the window (share of it passed), past its reset (> 1) included.
SHARES = (0.0, 0.01, 0.049, 0.051, 0.3, 0.5, 0.8, 0.999, 1.0, 1.2)
UTILIZATIONS = (0.0, 0.3, 0.95, 1.12)


def series(name: str, labels: str, value: float) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": f"{value!r}x2"}


def build_cases() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    inputs: list[dict[str, str]] = []
    expected: list[dict[str, Any]] = []
    grid = itertools.product(LENGTHS, SHARES, UTILIZATIONS)
    for index, (length, share, utilization) in enumerate(grid):
        labels = f'org="o{index}",window="w"'
        resets_at = (1 - share) * length  # time() is 0 at the evaluation
        inputs += [
            series("claude_usage_utilization_ratio", labels, utilization),
            series("claude_usage_resets_at_timestamp_seconds", labels, resets_at),
            series("claude_usage_window_length_seconds", labels, length),
        ]
        pace = window_pace(utilization, resets_at, length, 0.0)
        if pace is not None:
            expected.append({"labels": f"claude_usage:pace_ratio{{{labels}}}", "value": pace.ratio})
    return inputs, expected


@pytest.mark.tool
def test_promtool_finds_the_pace_python_finds(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    inputs, expected = build_cases()
    assert 0 < len(expected) < len(inputs) // 3  # some windows have a pace, some none
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {"expr": "claude_usage:pace_ratio", "eval_time": "0m", "exp_samples": expected},
                    {
                        "expr": "claude_usage:projected_utilization_ratio"
                        " != claude_usage:pace_ratio",
                        "eval_time": "0m",
                        "exp_samples": [],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "pace_grid_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "SUCCESS" in output


@pytest.mark.tool
def test_the_recording_rules_pass_promtools_lint() -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    result = subprocess.run(
        [promtool, "check", "rules", "--lint=all", "--lint-fatal", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout
