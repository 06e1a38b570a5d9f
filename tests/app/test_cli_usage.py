"""`monitor usage` in-process (`main()` runs its own event loop), against the standard
simulator served from a background thread."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.simulator import Fault
from tests.support.clock import FakeClock
from tests.support.config import write_config
from tests.support.upstream import (
    ORG_A,
    ORG_B,
    ORG_C,
    TOKEN_A,
    TOKEN_B,
    ThreadedSimulator,
    standard_simulator,
)

USAGE_ORGS = [
    {"uuid": ORG_A, "name": "acme", "token_env": "CLI_TOKEN_A"},
    {"uuid": ORG_B, "name": "beta", "token_env": "CLI_TOKEN_B"},
]


@pytest.fixture
def served() -> Iterator[ThreadedSimulator]:
    """The standard simulator with its clock stopped, so two reads agree."""
    with ThreadedSimulator(standard_simulator(FakeClock())) as simulator:
        yield simulator


def write_usage_config(tmp_path: Path, url: str) -> Path:
    return write_config(tmp_path / "config.toml", url, USAGE_ORGS, upstream={"timeout_seconds": 5})


@pytest.fixture
def usage_config(
    tmp_path: Path, served: ThreadedSimulator, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("CLI_TOKEN_A", TOKEN_A)
    monkeypatch.setenv("CLI_TOKEN_B", TOKEN_B)
    return write_usage_config(tmp_path, served.url)


def table_rows(out: str) -> list[list[str]]:
    lines = out.strip().splitlines()
    header = lines[0]
    starts = [header.index(col) for col in ("ORG", "WINDOW", "USED", "RESETS IN", "EXTRA")]
    rows = []
    for line in lines[1:]:
        if not line.strip():
            break
        bounds = [*starts[1:], len(line) + 1]
        rows.append([line[a:b].strip() for a, b in zip(starts, bounds, strict=True)])
    return rows


def test_usage_prints_a_table(
    served: ThreadedSimulator, usage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(usage_config)]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[0].split() == [
        "ORG",
        "WINDOW",
        "USED",
        "RESETS",
        "IN",
        "PACE",
        "PROJECTION",
        "EXTRA",
        "CREDITS",
    ]
    rows = table_rows(out)
    by_window = {(row[0], row[1]): row for row in rows}

    payload_a = served.sim.usage(ORG_A)
    code = payload_a["claude_code"]
    assert isinstance(code, dict)
    row = by_window[("acme", "claude_code")]
    assert row[2] == f"{code['utilization']:.1f}%"
    assert row[3] not in ("-", "now")  # a duration such as "4h 59m"
    extra = payload_a["extra_usage"]
    assert isinstance(extra, dict)
    used_credits, monthly_limit = extra["used_credits"], extra["monthly_limit"]
    assert isinstance(used_credits, int | float) and isinstance(monthly_limit, int | float)
    used = f"{used_credits / 100:.2f}"
    limit = f"{monthly_limit / 100:.2f}"
    assert row[4] == f"{used} / {limit}"

    payload_b = served.sim.usage(ORG_B)
    beta_windows = [
        key
        for key, value in payload_b.items()
        if isinstance(value, dict) and value.get("utilization") is not None
    ]
    assert {w for org, w in by_window if org == "beta"} >= set(beta_windows)
    beta_first = next(row for row in rows if row[0] == "beta")
    assert beta_first[4].endswith(" USD")
    assert TOKEN_A not in out
    assert TOKEN_B not in out


def test_usage_json_matches_the_upstream(
    served: ThreadedSimulator, usage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(usage_config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    orgs = {org["org_uuid"]: org for org in report["orgs"]}
    assert set(orgs) == {ORG_A, ORG_B}
    for org_uuid in (ORG_A, ORG_B):
        entry = orgs[org_uuid]
        assert entry["result"] == "success"
        assert entry["error"] is None
        payload = served.sim.usage(org_uuid)
        for key, value in payload.items():
            if not isinstance(value, dict) or "utilization" not in value:
                continue
            window = entry["windows"][key]
            if value["utilization"] is None:
                assert window["utilization_percent"] is None
            else:
                assert window["utilization_percent"] == pytest.approx(value["utilization"])
            if value.get("resets_at") is None:
                assert window["resets_at"] is None
            else:
                resets_at = value["resets_at"]
                assert isinstance(resets_at, str)
                assert datetime.fromisoformat(window["resets_at"]) == datetime.fromisoformat(
                    resets_at
                )
        extra = payload["extra_usage"]
        assert isinstance(extra, dict)
        assert entry["extra_usage"]["used_credits"] == extra["used_credits"]
        assert entry["extra_usage"]["is_enabled"] == extra["is_enabled"]


def test_usage_exits_1_and_says_why_when_an_org_fails(
    served: ThreadedSimulator, usage_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served.call(lambda: served.sim.set_fault(ORG_B, Fault(status=401)))
    assert main(["usage", "--config", str(usage_config)]) == 1
    out, _ = capsys.readouterr()
    assert "failed:" in out
    failed = out.split("failed:", 1)[1]
    assert "beta: unauthorized: HTTP 401" in failed
    assert "acme" not in failed
    assert any(row[0] == "acme" for row in table_rows(out))

    assert main(["usage", "--config", str(usage_config), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    beta = next(org for org in report["orgs"] if org["org"] == "beta")
    assert beta["result"] == "unauthorized"
    assert "401" in beta["error"]


def test_usage_discovers_accounts(
    tmp_path: Path,
    served: ThreadedSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLI_TOKEN_A", TOKEN_A)
    path = write_config(
        tmp_path / "config.toml", served.url, [], accounts=[{"token_env": "CLI_TOKEN_A"}]
    )
    assert main(["usage", "--config", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(org["org_uuid"] for org in report["orgs"]) == sorted([ORG_A, ORG_C])
    assert len(served.sim.requests_for(ORG_A)) == 1


def test_usage_with_a_bad_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLI_TOKEN_A", raising=False)
    path = write_usage_config(tmp_path, "http://127.0.0.1:9")
    assert main(["usage", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "orgs[0].token_env: environment variable CLI_TOKEN_A is not set" in err
    assert "Traceback" not in err
