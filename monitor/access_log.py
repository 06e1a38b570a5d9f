"""The access log of `monitor run` and `monitor demo`, which never prints a credential."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class ProxyAccessLogger(AbstractAccessLogger):
    """One line per request: client, request line, status, size, seconds, User-Agent.

    aiohttp's configurable `AccessLogger` prints whatever header its format names; this one
    has a fixed format that never names a request header but User-Agent, so neither
    `Authorization` nor `Cookie` (nor any other credential) can reach the log.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        user_agent = request.headers.get("User-Agent", "-")
        version = request.version
        size = response.body_length
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.6f "%s"',
            request.remote or "-",
            request.method,
            request.raw_path,
            version.major,
            version.minor,
            response.status,
            size,
            time,
            user_agent,
        )
