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
