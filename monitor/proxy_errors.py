"""Answers the proxy makes itself, as JSON errors, and the upstream failures behind them.

`upstream_failure` turns what went wrong on the way to the upstream into the error the
caller gets (502, 504), as a pure function of the exception, so every case is a plain call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from monitor.proxy_routes import ROUTES, Route, method_label


@dataclass(frozen=True)
class ProxyError(Exception):
    """An answer the proxy makes itself: `{"error": {"type", "message"}}` with `status`."""

    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"

    def body(self) -> bytes:
        return json.dumps({"error": {"type": self.type, "message": self.message}}).encode()

    def response(self) -> web.Response:
        return web.Response(
            body=self.body(),
            status=self.status,
            content_type="application/json",
            headers=dict(self.headers),
        )


def shown(value: str, limit: int = 80) -> str:
    """A caller's value quoted for an error message, cut short so errors stay readable."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def not_found(method: str, path: str) -> ProxyError:
    known = ", ".join(f"{r.method} {r.path}" for r in ROUTES)
    return ProxyError(
        404,
        "not_found",
        f"{method_label(method)} {shown(path, 200)} is not a proxied route; "
        f"the proxy serves: {known}",
    )


def method_not_allowed(route: Route, method: str) -> ProxyError:
    return ProxyError(
        405,
        "method_not_allowed",
        f"{method_label(method)} is not allowed on {route.path} (route {route.name}); "
        f"use {route.method}",
        headers={"Allow": route.method},
    )


def too_large(limit: int, size: int | None = None) -> ProxyError:
    got = f" (got {size} bytes)" if size is not None else ""
    return ProxyError(
        413, "request_too_large", f"request body is over the {limit // 1024} KiB limit{got}"
    )


def where(url: URL) -> str:
    """The upstream's scheme, host and port for messages (never a path, query or header)."""
    return f"{url.scheme}://{url.host}:{url.port}"


def upstream_failure(exc: BaseException, url: URL, timeout_seconds: float) -> ProxyError | None:
    """The answer for a request that got no usable answer from the upstream at `url`:
    504 when it stayed silent, 502 when the connection failed or the answer was not HTTP.
    None for an exception that is not about the upstream (let it propagate)."""
    if isinstance(exc, TimeoutError):
        return ProxyError(
            504,
            "upstream_timeout",
            f"the upstream {where(url)} did not answer within {timeout_seconds:g} s "
            "([upstream] timeout_seconds, the whole exchange)",
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ProxyError(
            502, "upstream_unreachable", f"cannot resolve the upstream host {url.host}"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return ProxyError(
            502, "upstream_unreachable", f"cannot connect to the upstream {where(url)}: {reason}"
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ProxyError(
            502,
            "upstream_connection_error",
            f"the upstream {where(url)} closed the connection without answering",
        )
    if isinstance(exc, aiohttp.ClientOSError):
        reason = exc.strerror or type(exc).__name__
        return ProxyError(
            502,
            "upstream_connection_error",
            f"the connection to the upstream {where(url)} failed: {reason}",
        )
    if isinstance(exc, aiohttp.ClientError):
        return ProxyError(
            502,
            "upstream_invalid_response",
            f"the upstream {where(url)} sent an answer that is not valid HTTP "
            f"({type(exc).__name__})",
        )
    return None


def proxy_unavailable() -> ProxyError:
    return ProxyError(
        503, "proxy_unavailable", "the upstream session is closed (monitor is stopping)"
    )


def upstream_busy(capacity: int, wait_seconds: float) -> ProxyError:
    return ProxyError(
        503,
        "upstream_busy",
        f"all {capacity} upstream connection(s) the proxy may use are busy and "
        f"none became free within {wait_seconds:g} s ([upstream] pool_wait_seconds); retry "
        "later, or raise [upstream] max_connections",
        headers={"Retry-After": "1"},
    )
