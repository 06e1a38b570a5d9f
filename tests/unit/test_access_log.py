"""The access log's records: made from a template for speed, the same as logging's own."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from monitor.access_log import ProxyAccessLogger, _task_name
from tests.support.upstream import ORG_A

# What differs between two records of the same line: when they were made.
PER_RECORD = {"created", "msecs", "relativeCreated"}
# What formatting adds to a record (caplog's handler formats each one).
FORMATTED = {"message", "asctime"}


def one_line(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    request = make_mocked_request(
        "GET", f"/api/organizations/{ORG_A}/usage", headers={"User-Agent": "curl/8.5.0"}
    )
    caplog.clear()
    ProxyAccessLogger(logger, "").log(request, web.Response(status=200, body=b"{}"), 0.25)
    (record,) = caplog.records
    return record


def test_a_record_has_every_attribute_logging_gives_it(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access.template")
    with caplog.at_level(logging.INFO):
        made = one_line(logger, caplog)
        assert isinstance(made.args, tuple)
        reference = logger.makeRecord(
            logger.name, logging.INFO, made.pathname, 0, made.msg, made.args, None, "log"
        )
    assert type(made) is logging.LogRecord
    made_fields, reference_fields = vars(made), vars(reference)
    assert made_fields.keys() - FORMATTED == reference_fields.keys()
    for key in made_fields.keys() - PER_RECORD - FORMATTED:
        assert made_fields[key] == reference_fields[key], key
    assert abs(made.created - reference.created) < 5
    assert abs(made.relativeCreated - reference.relativeCreated) < 5000
    assert made.msecs == int((made.created - int(made.created)) * 1000)
    assert made.getMessage().endswith('HTTP/1.1" 200 0 0.250000 "curl/8.5.0"')


def test_a_record_factory_of_someone_else_is_used(caplog: pytest.LogCaptureFixture) -> None:
    class Tagged(logging.LogRecord):
        pass

    logger = logging.getLogger("test.access.factory")
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(Tagged)
    try:
        with caplog.at_level(logging.INFO):
            assert type(one_line(logger, caplog)) is Tagged
    finally:
        logging.setLogRecordFactory(previous)


def test_nothing_is_logged_or_timed_below_info(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access.quiet")
    access = ProxyAccessLogger(logger, "")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        assert not access.enabled
    with caplog.at_level(logging.INFO, logger=logger.name):
        assert access.enabled


def test_threads_are_recorded_only_when_logging_records_them(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging, "logThreads", False)
    with caplog.at_level(logging.INFO):
        record = one_line(logging.getLogger("test.access.threads"), caplog)
    assert (record.thread, record.threadName) == (None, None)


async def test_the_task_name_is_the_running_task_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.12 records name the asyncio task; the copies name it the same way."""
    monkeypatch.setattr(logging, "logAsyncioTasks", True, raising=False)

    async def named() -> str | None:
        return _task_name()

    assert await asyncio.create_task(named(), name="handler-7") == "handler-7"
    monkeypatch.setattr(logging, "logAsyncioTasks", False)
    assert _task_name() is None


def test_no_task_name_outside_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging, "logAsyncioTasks", True, raising=False)
    assert _task_name() is None
