"""The upstream client's pure pieces: status to result, Retry-After, JSON decoding, and the
AccountBootstrap parser."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from monitor.state import PollResult
from monitor.upstream import (
    MAX_RETRY_AFTER_SECONDS,
    PollError,
    decode_json_object,
    failure_for_status,
    parse_bootstrap,
    parse_retry_after,
)
from tests.support.upstream import ORG_A, ORG_B, fixture_text

NOW = 1_800_000_000.0


def test_parse_bootstrap_bare_or_under_account() -> None:
    payload = json.loads(fixture_text("account_bootstrap.json"))
    expected = [(ORG_A, "Acme Team"), (ORG_B, "Personal")]
    assert [(o.uuid, o.name) for o in parse_bootstrap(payload)] == expected
    assert [(o.uuid, o.name) for o in parse_bootstrap(payload["account"])] == expected
    messy = {
        "memberships": [
            {"organization": {"uuid": ORG_A.upper(), "name": 5}},
            {"organization": {"uuid": ORG_A, "name": "again"}},
            {"organization": {"uuid": "not-a-uuid"}},
            {"organization": None},
            "junk",
        ]
    }
    assert [(o.uuid, o.name) for o in parse_bootstrap(messy)] == [(ORG_A, None)]
    with pytest.raises(PollError) as caught:
        parse_bootstrap({"account": {"uuid": "x"}})
    assert caught.value.result is PollResult.INVALID_RESPONSE


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (401, PollResult.UNAUTHORIZED),
        (403, PollResult.FORBIDDEN),
        (404, PollResult.NOT_FOUND),
        (429, PollResult.RATE_LIMITED),
        (500, PollResult.SERVER_ERROR),
        (503, PollResult.SERVER_ERROR),
        (599, PollResult.SERVER_ERROR),
        (400, PollResult.INVALID_RESPONSE),
        (418, PollResult.INVALID_RESPONSE),
        (301, PollResult.INVALID_RESPONSE),
    ],
)
def test_failure_for_status(status: int, result: PollResult) -> None:
    body = fixture_text("error_rate_limited.json").encode()
    error = failure_for_status(status, body, "application/json", "30", NOW)
    assert error.result is result
    assert error.status == status
    assert error.message == f"HTTP {status}: Rate limited. Please try again later."
    assert error.retry_after == (30.0 if status == 429 else None)


def test_failure_for_status_names_a_cloudflare_page() -> None:
    body = fixture_text("cloudflare_challenge.html").encode()
    error = failure_for_status(403, body, "text/html; charset=utf-8", None, NOW)
    assert error.result is PollResult.FORBIDDEN
    assert "Cloudflare" in error.message
    assert "<html" not in error.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("²", None),  # a Unicode digit: str.isdigit() says yes, float() says no
        ("١٢٠", None),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_is_always_finite_and_bounded() -> None:
    for value in ("9" * 400, "99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"):
        wait = parse_retry_after(value, NOW)
        assert wait is not None
        assert math.isfinite(wait)
        assert wait == MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<!DOCTYPE html><html></html>", "application/json"),
        (b"  <html><body>hi</body></html>", ""),
        (b"{}", "text/html"),
        (b"\xff\xfe{", "application/json"),
        (b"[]", "application/json"),
        (b"1" * 5000, "application/json"),  # over Python's int-digits limit
        (b"[" * 50_000, "application/json"),
    ],
)
def test_decode_json_object_refuses_everything_but_an_object(
    body: bytes, content_type: str
) -> None:
    with pytest.raises(PollError) as caught:
        decode_json_object(body, content_type)
    assert caught.value.result is PollResult.INVALID_RESPONSE


def test_decode_json_object_accepts_an_object() -> None:
    assert decode_json_object(b'{"a": 1}', "application/json") == {"a": 1}
