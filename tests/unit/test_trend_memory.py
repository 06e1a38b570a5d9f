"""`python -m bench.trend_memory`, the measure of the window history's memory in
docs/benchmarks.md, at a small scale: it counts what it says it counts."""

from __future__ import annotations

import pytest

from bench.trend_memory import main, measure
from monitor.history import POINTS


def test_history_memory_per_window_stays_small() -> None:
    result = measure(orgs=50)
    assert result["windows_per_org"] == 5
    assert 0 < result["points_kept"]["max"] <= POINTS
    assert result["points_kept"]["total"] > 50 * 5 * 20
    # about 720 bytes a window when full (float32 readings); double that is a regression
    assert 300 < result["bytes_per_window"] < 1000
    assert abs(result["bytes"] - result["bytes_per_window"] * 250) <= 250  # rounding


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--orgs", "3", "--windows", "6", "--poll-every", "600"]) == 0
    out = capsys.readouterr().out
    assert '"orgs": 3' in out
    assert '"windows_per_org": 6' in out
