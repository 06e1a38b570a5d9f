"""What a hostile peer controls, at the functions that read or log it: a request head
aiohttp refuses, JSON that Python's parser balks at, strings UTF-8 cannot encode."""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from monitor.logs import MalformedRequests
from tests.support.upstream import TOKEN_A


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
