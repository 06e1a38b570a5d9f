"""The access log of `monitor run` and `monitor demo`, which never prints a credential."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

_LINE = '%s "%s %s HTTP/%d.%d" %d %d %.6f "%s"'


class _RecordTemplate:
    """Access-log records copied from one made by logging itself, with only what differs
    per request filled in (the time, the thread, the arguments). logging's own
    constructor works out the same caller's file, process name and process id for every
    record; one request's record then costs a dict copy instead. Whatever attributes this
    Python's `LogRecord` has, the copy has them too."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._template = logging.LogRecord(name, logging.INFO, __file__, 0, _LINE, (), None, "log")
        self._created = self._template.created
        self._relative = self._template.relativeCreated

    def record(self, args: tuple[object, ...]) -> logging.LogRecord:
        made = logging.LogRecord.__new__(logging.LogRecord)
        fields = self._template.__dict__.copy()
        now = time.time()
        fields["args"] = args
        fields["created"] = now
        fields["msecs"] = int((now - int(now)) * 1000) + 0.0
        fields["relativeCreated"] = self._relative + (now - self._created) * 1000
        if fields["thread"] is not None:  # logging.logThreads
            fields["thread"] = threading.get_ident()
            fields["threadName"] = threading.current_thread().name
        if "taskName" in fields:  # Python 3.12 on
            fields["taskName"] = _task_name()
        made.__dict__ = fields
        return made


def _task_name() -> str | None:
    """The running asyncio task's name, as logging records it (Python 3.12 on)."""
    if not getattr(logging, "logAsyncioTasks", False):
        return None
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    return None if task is None else task.get_name()


class ProxyAccessLogger(AbstractAccessLogger):
    """One line per request: client, request line, status, size, seconds, User-Agent.

    aiohttp's configurable `AccessLogger` prints whatever header its format names; this one
    has a fixed format that never names a request header but User-Agent, so neither
    `Authorization` nor `Cookie` (nor any other credential) can reach the log.
    """

    _records: _RecordTemplate | None = None

    @property
    def enabled(self) -> bool:
        """aiohttp skips `log` (and its timing) when the line would be dropped anyway."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        version = request.version
        args = (
            request.remote or "-",
            request.method,
            request.raw_path,
            version.major,
            version.minor,
            response.status,
            response.body_length,
            time,
            request.headers.get("User-Agent", "-"),
        )
        logger = self.logger
        if logging.getLogRecordFactory() is not logging.LogRecord:
            # Someone else's record factory: logging makes the record (still without
            # walking the stack for a caller nothing prints).
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, _LINE, args, None)
        else:
            if self._records is None or self._records.name != logger.name:
                self._records = _RecordTemplate(logger.name)
            record = self._records.record(args)
        logger.handle(record)
