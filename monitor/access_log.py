"""The access log of `monitor run` and `monitor demo`, which never prints a credential."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from monitor.logs import plain_text_handler

_LINE = '%s "%s %s HTTP/%d.%d" %d %d %.6f "%s"'


class ProxyAccessLogger(AbstractAccessLogger):
    """One line per request: client, request line, status, size, seconds, User-Agent.

    aiohttp's configurable `AccessLogger` prints whatever header its format names; this one
    has a fixed format that never names a request header but User-Agent, so neither
    `Authorization` nor `Cookie` (nor any other credential) can reach the log.
    """

    @property
    def enabled(self) -> bool:
        """aiohttp skips `log` (and its timing) when the line would be dropped anyway."""
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
        version = request.version
        args = (
            request.remote or "-",
            request.method,
            request.raw_path,
            version.major,
            version.minor,
            response.status,
            response.body_length,
            seconds,
            request.headers.get("User-Agent", "-"),
        )
        logger = self.logger
        # Monitor's own text handler and nothing else in the way: the line is written
        # directly, byte for byte what logging would write, without a record.
        plain = plain_text_handler(logger, logging.INFO)
        if plain is not None and plain.write_line(time.time(), "INFO", logger.name, _LINE % args):
            return
        # Else logging makes the record (not `logger.info`, which would also walk the
        # stack for a caller's file and line that nothing prints).
        logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, _LINE, args, None))
