"""What a hostile peer controls, at the functions that read or log it: a request head
aiohttp refuses, JSON that Python's parser balks at, strings UTF-8 cannot encode."""

from __future__ import annotations

import logging
import math
import sys

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from monitor.logs import MalformedRequests
from monitor.passive_refresh import decode_usage
from monitor.proxy_errors import ProxyError
from monitor.proxy_rules import check_web_fetch_body
from monitor.state import PollResult
from monitor.upstream import (
    PollError,
    decode_json_object,
    parse_bootstrap,
    upstream_error_message,
)
from monitor.usage import json_int, parse_usage
from tests.support.upstream import ORG_A, TOKEN_A


def refusal_record(error: Exception) -> logging.LogRecord:
    """The record aiohttp's server logs when its parser refuses a request."""
    try:
        raise error
    except type(error):
        return logging.getLogger("aiohttp.server").makeRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("127.0.0.1",),
            exc_info=sys.exc_info(),
        )


def test_a_refused_request_head_is_one_info_line_without_its_bytes() -> None:
    line = f"Bearer {TOKEN_A}" + "a" * 9000
    record = refusal_record(LineTooLong(line[:100], 8190))
    assert MalformedRequests().filter(record)
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert record.getMessage() == "refused a malformed request from 127.0.0.1: LineTooLong"
    assert TOKEN_A not in logging.Formatter().format(record)


def test_other_server_errors_are_left_as_they_are() -> None:
    record = refusal_record(RuntimeError("a bug in a handler"))
    assert MalformedRequests().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    too_many = refusal_record(BadHttpMessage("Too many headers received"))
    assert MalformedRequests().filter(too_many)
    assert too_many.getMessage().endswith(": BadHttpMessage")


def test_an_integer_past_pythons_digit_limit_drops_only_its_field() -> None:
    body = b'{"five_hour": {"utilization": 5}, "extra_usage": {"used_credits": -1%s}}' % (
        b"0" * 5000
    )
    payload = decode_json_object(body, "application/json")
    snapshot = parse_usage(payload)
    assert snapshot.utilizations() == {"five_hour": 0.05}
    assert snapshot.extra is not None and snapshot.extra.used_credits is None
    assert json_int("-" + "9" * 5000) == -math.inf
    assert json_int("12") == 12 and isinstance(json_int("12"), int)


def test_json_nested_past_the_parser_is_refused_with_a_reason() -> None:
    deep = b'{"five_hour": {"utilization": 5}, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with pytest.raises(PollError) as polled:
        decode_json_object(deep, "application/json")
    assert (polled.value.result, polled.value.message) == (
        PollResult.INVALID_RESPONSE,
        "body is JSON nested too deeply",
    )
    with pytest.raises(ValueError, match="nested too deeply"):
        decode_usage(deep, None)  # a relayed answer: no passive refresh, no exception
    with pytest.raises(ProxyError) as refused:
        check_web_fetch_body(b'{"url": ' + b"[" * 30_000 + b"]" * 30_000 + b"}")
    assert (refused.value.status, refused.value.type) == (400, "invalid_body")
    assert "nested too deeply" in refused.value.message


def test_a_lone_surrogate_from_the_upstream_is_replaced_where_it_is_read() -> None:
    # JSON's \ud800 escape decodes to a str UTF-8 cannot encode: a page or an exposition
    # holding it would fail to render.
    bootstrap = {"memberships": [{"organization": {"uuid": ORG_A, "name": "team \ud800 \udfff"}}]}
    assert parse_bootstrap(bootstrap)[0].name == "team \ufffd \ufffd"
    error = upstream_error_message(b'{"error": {"message": "bad \\ud800 token"}}')
    assert error == "bad \ufffd token"
    snapshot = parse_usage({"extra_usage": {"used_credits": 1, "currency": "\udc80EUR"}})
    assert snapshot.extra is not None and snapshot.extra.currency == "\ufffdEUR"
    for text in (parse_bootstrap(bootstrap)[0].name or "", error, snapshot.extra.currency):
        text.encode()  # encodes: nothing left that UTF-8 refuses
