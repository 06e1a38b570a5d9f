"""What the proxy refuses itself, without a call to the upstream: bad parameters, missing
credentials, bad bodies, wrong methods, unknown routes and paths that climb out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import MakeProxy
from tests.support.config import make_config
from tests.support.upstream import (
    AUTH_A,
    ORG_A,
    ORG_B,
    TOKEN_A,
    Upstream,
)

LOCAL_REFUSALS: list[tuple[str, str, dict[str, str], bytes | None, int, str, str]] = [
    ("GET", "/api/organizations/acme/usage", AUTH_A, None, 400, "invalid_parameter", "org_uuid"),
    (
        "GET",
        f"/api/organizations/{ORG_A}/projects/bad.id!",
        AUTH_A,
        None,
        400,
        "invalid_parameter",
        "project_id",
    ),
    (
        "GET",
        f"/api/organizations/{ORG_A}/memory",
        AUTH_A,
        None,
        400,
        "invalid_parameter",
        "project_uuid",
    ),
    (
        "GET",
        f"/api/organizations/{ORG_A}/memory?project_uuid=latest",
        AUTH_A,
        None,
        400,
        "invalid_parameter",
        "project_uuid",
    ),
    ("GET", f"/api/organizations/{ORG_A}/usage", {}, None, 401, "missing_credentials", "Cookie"),
    ("GET", "/api/account", {"Authorization": ""}, None, 401, "missing_credentials", "Bearer"),
    (
        "POST",
        f"/api/organizations/{ORG_A}/cowork/web_fetch",
        AUTH_A,
        b'{"url": "example.com", "allowed_urls": ["https://example.com"]}',
        400,
        "invalid_body",
        "url: must be an absolute http:// or https:// URL",
    ),
    (
        "POST",
        f"/api/organizations/{ORG_A}/cowork/web_fetch",
        AUTH_A,
        b'{"url": "https://example.com"}',
        400,
        "invalid_body",
        "allowed_urls: required field is missing",
    ),
    (
        "POST",
        f"/api/organizations/{ORG_A}/cowork/web_fetch",
        AUTH_A,
        b"url=https://example.com",
        400,
        "invalid_body",
        "body: not valid JSON",
    ),
    (
        "POST",
        f"/api/organizations/{ORG_A}/cowork/web_fetch",
        AUTH_A,
        b" " * (64 * 1024 + 1),
        413,
        "request_too_large",
        "64 KiB",
    ),
    ("POST", f"/api/organizations/{ORG_A}/usage", AUTH_A, b"{}", 405, "method_not_allowed", "GET"),
    (
        "GET",
        f"/api/organizations/{ORG_A}/cowork/web_fetch",
        AUTH_A,
        None,
        405,
        "method_not_allowed",
        "POST",
    ),
    ("DELETE", "/api/account", AUTH_A, None, 405, "method_not_allowed", "GET"),
    ("GET", "/api/organizations/x/y/z", AUTH_A, None, 404, "not_found", "/api/bootstrap"),
    ("GET", f"/api/organizations/{ORG_A}/usage/", AUTH_A, None, 404, "not_found", "usage"),
    ("GET", "/api/v1/messages", AUTH_A, None, 404, "not_found", "not a proxied route"),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "error_type", "fragment"), LOCAL_REFUSALS
)
async def test_local_refusals_never_reach_the_upstream(
    upstream: Upstream,
    make_proxy: MakeProxy,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    error_type: str,
    fragment: str,
) -> None:
    proxy = await make_proxy(make_config(upstream.url))
    response = await proxy.request(method, path, headers=headers, data=body)
    assert response.status == status
    assert response.content_type == "application/json"
    payload = await response.json()
    assert set(payload) == {"error"}
    assert payload["error"]["type"] == error_type
    assert fragment in payload["error"]["message"]
    if status == 405:
        assert response.headers["Allow"] == fragment
    assert list(upstream.sim.requests) == []


async def test_a_chunked_body_over_64_kib_is_413(upstream: Upstream, make_proxy: MakeProxy) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 4096

    proxy = await make_proxy(make_config(upstream.url))
    response = await proxy.post(
        f"/api/organizations/{ORG_A}/cowork/web_fetch", headers=AUTH_A, data=chunks()
    )
    assert response.status == 413
    assert (await response.json())["error"]["type"] == "request_too_large"
    assert list(upstream.sim.requests) == []


async def raw_request(
    client: TestClient[web.Request, web.Application], target: str
) -> tuple[int, bytes]:
    """Send a request line exactly as written (no client library normalizing the path)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN_A}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    "target",
    [
        f"/api/organizations/{ORG_A}/projects/..%2F..%2F..%2Faccount",
        f"/api/organizations/{ORG_A}/projects/%2e%2e/usage",
        f"/api/organizations/{ORG_A}/projects/..",
        f"/api/organizations/{ORG_A}/projects/x/../../{ORG_B}/usage",
        f"/api/organizations/{ORG_A}%2F..%2F{ORG_B}/usage",
        f"/api/organizations/{ORG_A}/projects/a%5C..%5Cb/docs",
        "/api/organizations/./account",
    ],
)
async def test_traversal_attempts_never_reach_the_upstream(
    upstream: Upstream, make_proxy: MakeProxy, target: str
) -> None:
    proxy = await make_proxy(make_config(upstream.url))
    status, body = await raw_request(proxy, target)
    assert status == 400
    assert json.loads(body)["error"]["type"] == "invalid_path"
    assert list(upstream.sim.requests) == []
