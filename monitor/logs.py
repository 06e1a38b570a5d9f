"""Logging to stderr, one line per event: readable text, or JSON for machines."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Literal, TextIO

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
        # logging's own default: local time, then `,` and the milliseconds.
        return f"{self._seconds(record.created)},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            # Keep one line per event even when a traceback is attached (logging puts it
            # on lines of its own, after the message).
            return super().format(record).replace("\n", " | ")
        # The same line as the format string above, built directly: the access log
        # formats one per request.
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = f"{record.asctime} {record.levelname:<7} {record.name}: {record.message}"
        return line.replace("\n", " | ") if "\n" in line else line


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record comes, not the one at start-up, so
    a redirected or captured stderr never leaves the handler writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        # StreamHandler's, without its separate flush when stderr flushes each line itself.
        try:
            stream = sys.stderr
            stream.write(self.format(record) + self.terminator)
            if not getattr(stream, "line_buffering", False):
                stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 (logging's rule: a failed write never raises)
            self.handleError(record)


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
