"""Log lines: one per event, as text or JSON, extra fields kept, tracebacks folded."""

from __future__ import annotations

import json
import logging
import sys
from typing import NoReturn

from monitor.logs import JsonFormatter, TextFormatter


def fail() -> NoReturn:
    raise ValueError("boom")


def record_with_exception() -> logging.LogRecord:
    try:
        fail()
    except ValueError:
        return logging.getLogger("monitor.test").makeRecord(
            "monitor.test",
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("once",),
            exc_info=sys.exc_info(),
            extra={"org": "acme", "attempt": 2, "where": ("a", 1)},
        )


def test_json_lines_keep_extra_fields_and_the_exception() -> None:
    entry = json.loads(JsonFormatter().format(record_with_exception()))
    assert entry["level"] == "error"
    assert entry["logger"] == "monitor.test"
    assert entry["message"] == "failed once"
    assert (entry["org"], entry["attempt"], entry["where"]) == ("acme", 2, "('a', 1)")
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("Z")


def test_text_lines_fold_a_traceback_into_one_line() -> None:
    line = TextFormatter().format(record_with_exception())
    assert "\n" not in line
    assert "ERROR   monitor.test: failed once" in line
    assert " | ValueError: boom" in line


def plain_record(
    message: str = "polled %s", args: tuple[object, ...] = ("acme",)
) -> logging.LogRecord:
    return logging.getLogger("monitor.test").makeRecord(
        "monitor.test", logging.INFO, __file__, 1, message, args, None
    )


def test_text_lines_are_what_the_format_string_gives() -> None:
    """TextFormatter builds the usual line directly; it must be what logging's own
    formatter makes of the same format string, to the millisecond."""
    reference = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    formatter = TextFormatter()
    for record in (plain_record(), plain_record("two\nlines %d", (2,))):
        expected = reference.format(record).replace("\n", " | ")
        assert formatter.format(record) == expected
    # Records in the same second share the date and time; each keeps its milliseconds.
    first, second = plain_record(), plain_record()
    second.created, second.msecs = int(first.created) + 0.25, 250.0
    assert formatter.format(second) == reference.format(second)
    assert formatter.formatTime(first, "%H") == reference.formatTime(first, "%H")


def test_json_time_is_the_record_time_in_utc() -> None:
    record = plain_record()
    record.created, record.msecs = 1_800_000_000.042, 42.0
    entry = json.loads(JsonFormatter().format(record))
    assert entry["time"] == "2027-01-15T08:00:00.042Z"
