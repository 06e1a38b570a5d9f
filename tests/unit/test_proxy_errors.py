"""`upstream_failure`: every way a proxied request can get no usable answer, as the error
the caller gets (and None for what is not about the upstream)."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from monitor.proxy_errors import upstream_failure, where

URL_A = URL("http://127.0.0.1:8123/api/account?secret=no")
KEY = ConnectionKey("127.0.0.1", 8123, False, True, None, None, None)


def test_where_names_scheme_host_and_port_only() -> None:
    assert where(URL_A) == "http://127.0.0.1:8123"


@pytest.mark.parametrize(
    ("exc", "status", "error_type", "fragment"),
    [
        (TimeoutError(), 504, "upstream_timeout", "did not answer within 2.5 s"),
        (
            aiohttp.ClientConnectorDNSError(KEY, OSError(socket.EAI_NONAME, "Name unknown")),
            502,
            "upstream_unreachable",
            "cannot resolve the upstream host 127.0.0.1",
        ),
        (
            aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "Connection refused")),
            502,
            "upstream_unreachable",
            "cannot connect to the upstream http://127.0.0.1:8123: Connection refused",
        ),
        (
            aiohttp.ClientConnectorError(KEY, OSError()),
            502,
            "upstream_unreachable",
            "cannot connect to the upstream http://127.0.0.1:8123: OSError",
        ),
        (
            aiohttp.ServerDisconnectedError(),
            502,
            "upstream_connection_error",
            "closed the connection without answering",
        ),
        (
            aiohttp.ClientOSError(104, "Connection reset by peer"),
            502,
            "upstream_connection_error",
            "the connection to the upstream http://127.0.0.1:8123 failed: Connection reset",
        ),
        (
            aiohttp.ClientOSError(),
            502,
            "upstream_connection_error",
            "failed: ClientOSError",
        ),
        (
            aiohttp.ClientResponseError(None, (), status=400),  # type: ignore[arg-type]  # no request info: not read here
            502,
            "upstream_invalid_response",
            "sent an answer that is not valid HTTP (ClientResponseError)",
        ),
    ],
)
def test_each_failure_is_its_error(
    exc: BaseException, status: int, error_type: str, fragment: str
) -> None:
    error = upstream_failure(exc, URL_A, 2.5)
    assert error is not None
    assert (error.status, error.type) == (status, error_type)
    assert fragment in error.message
    assert "secret" not in error.message  # never the path or the query


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("x"), RuntimeError()])
def test_what_is_not_about_the_upstream_is_left_to_propagate(exc: BaseException) -> None:
    assert upstream_failure(exc, URL_A, 2.5) is None
