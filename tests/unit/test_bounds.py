"""The bounds that keep labels and formats in check: windows per org, account names,
content negotiation of /metrics."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError
from monitor.metrics import accepts_gzip, wants_openmetrics
from monitor.usage import bound_windows, parse_usage
from tests.support.config import make_config

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text; version=1.0.0", True),
        ("text/plain;version=0.0.4", False),
        ("", False),
        ("*/*", False),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;q=0.4, text/plain;q=0.5", False),
        ("text/plain;q=0.5, application/openmetrics-text;q=0.5", True),
        ("APPLICATION/OPENMETRICS-TEXT", True),
        ("application/openmetrics-text;q=bogus", False),
        ("application/json", False),
    ],
)
def test_openmetrics_when_accept_prefers_it(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


@pytest.mark.parametrize(
    ("accept_encoding", "gzip"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, identity", False),
        ("identity", False),
        ("", False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("deflate, gzip;q=0.1", True),
    ],
)
def test_gzip_only_where_accept_encoding_allows_it(accept_encoding: str, gzip: bool) -> None:
    assert accepts_gzip(accept_encoding) is gzip


def test_known_windows_are_kept_first_then_the_payload_order() -> None:
    names = ["zz", "seven_day_opus", "a1", "projects", "five_hour", "claude_code", "b2"]
    kept, dropped = bound_windows(names, 4)
    assert kept == {"claude_code", "projects", "five_hour", "seven_day_opus"}
    assert dropped == ("zz", "a1", "b2")  # in the payload's order
    assert bound_windows(names, 10) == (set(names), ())


def test_a_payload_of_thousands_of_windows_keeps_the_bound() -> None:
    payload: dict[str, dict[str, float | None]] = {
        f"codename_{i}": {"utilization": i % 100, "resets_at": None} for i in range(5000)
    }
    payload["five_hour"] = {"utilization": 50.0, "resets_at": None}
    snapshot = parse_usage(payload, max_windows=64)
    assert len(snapshot.windows) == 64
    assert len(snapshot.dropped) == 5001 - 64
    assert snapshot.window("five_hour") is not None  # a known window wins its place
    assert [w.name for w in snapshot.windows][:2] == ["codename_0", "codename_1"]


def test_two_accounts_of_one_name_are_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        make_config(
            "http://127.0.0.1:9",
            [],
            accounts=[
                {"name": "team", "token_env": "TOKEN_A"},
                {"name": "team", "token_env": "TOKEN_B"},
                {"token_env": "TOKEN_C"},
                {"name": "accounts[2]", "token_env": "TOKEN_C"},
            ],
        )
    assert refused.value.problems == [
        "accounts[1].name: 'team' is already the name of accounts[0]",
        "accounts[3].name: 'accounts[2]' is already the name of accounts[2]",
    ]
