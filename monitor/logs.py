"""Logging to stderr, one line per event: readable text, or JSON for machines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO, cast

from aiohttp.http_exceptions import HttpProcessingError

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else was passed in `extra=` and is kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _Seconds:
    """`strftime` of a record's second, worked out once per second: the access log writes
    a line per request, thousands in the same second."""

    def __init__(self, pattern: str, convert: Callable[[float], time.struct_time]) -> None:
        self._pattern = pattern
        self._convert = convert
        self._second = -1
        self._text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._text = time.strftime(self._pattern, self._convert(created))
            self._second = second
        return self._text


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._seconds = _Seconds("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": f"{self._seconds(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._seconds = _Seconds(self.default_time_format, time.localtime)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self._time(record.created, record.msecs)

    def _time(self, created: float, msecs: float) -> str:
        # logging's own default: local time, then `,` and the milliseconds.
        return f"{self._seconds(created)},{int(msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            # Keep one line per event even when a traceback is attached (logging puts it
            # on lines of its own, after the message).
            return super().format(record).replace("\n", " | ")
        record.message = record.getMessage()
        record.asctime = self._time(record.created, record.msecs)
        return self._line(record.asctime, record.levelname, record.name, record.message)

    def line(self, created: float, levelname: str, name: str, message: str) -> str:
        """The line `format` makes of a record with these fields and no traceback."""
        msecs = int((created - int(created)) * 1000)  # as logging works it out
        line = f"{self._seconds(created)},{msecs:03d} {levelname:<7} {name}: {message}"
        return line.replace("\n", " | ") if "\n" in line else line

    @staticmethod
    def _line(asctime: str, levelname: str, name: str, message: str) -> str:
        # The format string above, built directly: the access log makes one per request.
        line = f"{asctime} {levelname:<7} {name}: {message}"
        return line.replace("\n", " | ") if "\n" in line else line


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record comes, not the one at start-up, so
    a redirected or captured stderr never leaves the handler writing to a closed file.

    Lines given to `write_line` on the event loop (the access log, one per request) are
    written together once the loop has run what was ready: one write for every request
    answered in that turn, not one each. Any other line writes them first, so lines
    keep their order; `flush` (logging calls it at exit) writes what is left."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._pending: list[str] = []

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self._take_pending() + self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 (logging's rule: a failed write never raises)
            self.handleError(record)

    def write_line(self, created: float, levelname: str, name: str, message: str) -> bool:
        """Queue the line `emit` would write for a record with these fields, without the
        record; False when there is no event loop to write it (then log it the usual
        way)."""
        formatter = self.formatter
        assert isinstance(formatter, TextFormatter)  # as `plain_text_handler` checked
        line = formatter.line(created, levelname, name, message) + self.terminator
        with self._locked():
            if not self._pending:
                try:
                    asyncio.get_running_loop().call_soon(self._write_pending)
                except RuntimeError:
                    return False
            self._pending.append(line)
        return True

    def flush(self) -> None:
        self._write_pending()
        super().flush()

    def _write_pending(self) -> None:
        with self._locked():
            text = self._take_pending()
            if text:
                try:
                    self._write(text)
                except Exception:  # noqa: BLE001 (logging's rule, as in `emit`)
                    self.handleError(logging.makeLogRecord({"msg": text.rstrip()}))

    def _take_pending(self) -> str:
        if not self._pending:
            return ""
        text = "".join(self._pending)
        self._pending.clear()
        return text

    def _write(self, text: str) -> None:
        stream = sys.stderr
        stream.write(text)
        if not getattr(stream, "line_buffering", False):  # else the write flushed it
            stream.flush()

    def _locked(self) -> contextlib.AbstractContextManager[object]:
        return self.lock if self.lock is not None else contextlib.nullcontext()


def plain_text_handler(logger: logging.Logger, level: int) -> StderrHandler | None:
    """The one handler a `level` record of `logger` would reach, when that is monitor's
    own text handler and nothing on the way filters, changes or copies the record (no
    filter on `logger` or the handler, no other handler, no record factory of someone
    else's): then `StderrHandler.write_line` writes exactly what logging would. None
    otherwise (a test's capture handler, JSON lines, a filter), and logging does it."""
    if logger.filters or logger.disabled or logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    found: StderrHandler | None = None
    node: logging.Logger | None = logger
    while node is not None:
        for handler in node.handlers:
            if found is not None or not _plain(handler, level):
                return None
            found = cast(StderrHandler, handler)
        node = node.parent if node.propagate else None
    return found


def _plain(handler: logging.Handler, level: int) -> bool:
    return (
        type(handler) is StderrHandler
        and type(handler.formatter) is TextFormatter
        and not handler.filters
        and level >= handler.level
    )


class MalformedRequests(logging.Filter):
    """aiohttp logs a request its parser refuses (a line or header over 8190 bytes, too
    many headers, garbage) as an ERROR with a traceback, whose message quotes the first
    100 bytes of the offending line: an oversized `Cookie` or `Authorization` header would
    put a credential in the log. Such a record becomes one INFO line that names only the
    kind of error (the access log has the 400 that answered it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "refused a malformed request from %s: %s"
        record.args = (remote, type(error).__name__)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def configure_logging(fmt: LogFormat = "text", level: str = "INFO") -> None:
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # APScheduler logs every job run at INFO; that is one line per poll per org.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server.filters):
        server.addFilter(MalformedRequests())
