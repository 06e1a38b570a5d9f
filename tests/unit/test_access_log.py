"""The access log: written straight to monitor's own handler when nothing else is in the
way, byte for byte what logging would write, gathered into one write per loop turn."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from monitor.access_log import ProxyAccessLogger
from monitor.logs import JsonFormatter, StderrHandler, TextFormatter, plain_text_handler
from tests.support.upstream import ORG_A

PATH = f"/api/organizations/{ORG_A}/usage"


class Stderr(io.StringIO):
    """What the handler writes, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def capture_stderr(monkeypatch: pytest.MonkeyPatch) -> Stderr:
    # In the test's body: between a fixture and the test, pytest puts its own capture
    # back on sys.stderr.
    captured = Stderr()
    monkeypatch.setattr("sys.stderr", captured)
    return captured


class Access:
    """A logger of its own under a parent that holds monitor's text handler (as
    `configure_logging` sets up the root) and does not propagate."""

    def __init__(self) -> None:
        self.parent = logging.getLogger("test-access")
        self.handler = StderrHandler()
        self.handler.setFormatter(TextFormatter())
        self.parent.addHandler(self.handler)
        self.parent.propagate = False
        self.logger = logging.getLogger("test-access.aiohttp")
        self.logger.setLevel(logging.INFO)

    def alone(self) -> tuple[logging.Logger, StderrHandler]:
        """pytest hangs its capture handlers on every logger that does not propagate
        when a test starts; take them off, so the handler is alone, as in a run."""
        for other in [h for h in self.parent.handlers if h is not self.handler]:
            self.parent.removeHandler(other)
        return self.logger, self.handler

    def close(self) -> None:
        self.parent.removeHandler(self.handler)
        self.parent.propagate = True
        self.logger.filters.clear()


@pytest.fixture
def access() -> Iterator[Access]:
    made = Access()
    yield made
    made.close()


def log_request(logger: logging.Logger, user_agent: str = "curl/8.5.0") -> None:
    request = make_mocked_request("GET", PATH, headers={"User-Agent": user_agent})
    ProxyAccessLogger(logger, "").log(request, web.Response(status=200, body=b"{}"), 0.25)


async def test_the_direct_line_is_what_logging_writes(
    access: Access, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler = access.alone()
    stderr = capture_stderr(monkeypatch)
    assert plain_text_handler(logger, logging.INFO) is handler
    log_request(logger)
    await asyncio.sleep(0)  # the loop turn ends: the gathered lines are written
    direct = stderr.getvalue()
    stderr = capture_stderr(monkeypatch)
    logger.addFilter(lambda _record: True)  # anything in the way: logging does it all
    assert plain_text_handler(logger, logging.INFO) is None
    log_request(logger)
    through_logging = stderr.getvalue()
    # Equal but for the milliseconds of the time stamp (two moments).
    assert direct.count("\n") == through_logging.count("\n") == 1
    assert direct[:20] == through_logging[:20]
    assert direct[23:] == through_logging[23:]
    assert direct[23:] == (
        f' INFO    test-access.aiohttp: - "GET {PATH} HTTP/1.1" 200 0 0.250000 "curl/8.5.0"\n'
    )


async def test_lines_of_one_loop_turn_are_one_write_and_keep_their_order(
    access: Access, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler = access.alone()
    writes = capture_stderr(monkeypatch).writes
    log_request(logger, "first")
    log_request(logger, "second")
    assert writes == []  # not yet: the loop turn is not over
    logger.warning("a line of another kind")  # writes the gathered ones first
    log_request(logger, "third")
    await asyncio.sleep(0)
    assert len(writes) == 2
    lines = "".join(writes).splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in lines] == [
        '"first"',
        '"second"',
        "kind",
        '"third"',
    ]
    log_request(logger, "at exit")
    handler.flush()  # what logging.shutdown does: nothing is left behind
    assert writes[-1].endswith('"at exit"\n')


def test_without_an_event_loop_a_line_goes_through_logging(
    access: Access, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, _ = access.alone()
    stderr = capture_stderr(monkeypatch)
    log_request(logger)
    assert stderr.getvalue().endswith('"curl/8.5.0"\n')


def test_anything_in_the_way_takes_the_logging_path(
    access: Access, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler = access.alone()
    assert plain_text_handler(logger, logging.INFO) is handler
    handler.setLevel(logging.WARNING)
    assert plain_text_handler(logger, logging.INFO) is None
    handler.setLevel(logging.NOTSET)
    handler.setFormatter(JsonFormatter())
    assert plain_text_handler(logger, logging.INFO) is None
    handler.setFormatter(TextFormatter())
    second = logging.StreamHandler(io.StringIO())
    logger.addHandler(second)
    assert plain_text_handler(logger, logging.INFO) is None
    logger.removeHandler(second)
    monkeypatch.setattr(logger, "disabled", True)
    assert plain_text_handler(logger, logging.INFO) is None
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logging, "_logRecordFactory", type("Tagged", (logging.LogRecord,), {}))
    assert plain_text_handler(logger, logging.INFO) is None


def test_records_reach_a_capturing_handler(caplog: pytest.LogCaptureFixture) -> None:
    """With a test's capture handler (or any other) in the chain, logging makes the
    record: the message is the same line."""
    logger = logging.getLogger("test-access.captured")
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_request(logger)
    (record,) = caplog.records
    assert record.getMessage() == f'- "GET {PATH} HTTP/1.1" 200 0 0.250000 "curl/8.5.0"'
    assert (record.levelname, record.name) == ("INFO", logger.name)


def test_nothing_is_logged_or_timed_below_info() -> None:
    logger = logging.getLogger("test-access.quiet")
    access = ProxyAccessLogger(logger, "")
    logger.setLevel(logging.WARNING)
    assert not access.enabled
    logger.setLevel(logging.INFO)
    assert access.enabled
    logger.setLevel(logging.NOTSET)
