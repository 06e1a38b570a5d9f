"""The proxy over real HTTP: the simulator (or a small fake) as the upstream, the app under
`aiohttp_client`, every answer compared with what a direct call to the upstream gets."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from monitor.access_log import ProxyAccessLogger
from monitor.app import create_app
from monitor.schema import Config
from monitor.simulator import Fault
from monitor.state import UsageStore
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, TOKEN_B, Upstream, make_config

AiohttpClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
AiohttpServer = Callable[..., Awaitable[TestServer]]

AUTH_A = {"Authorization": f"Bearer {TOKEN_A}"}
SESSION_A = "sk-ant-sid01-test-session-key-a"
UNKNOWN_ORG = "00000000-0000-4000-8000-000000000000"
PROJECT_UUID = "0f3e2d1c-b4a5-4678-9abc-def012345678"
# Compared between a direct call and a proxied one: what describes the body and the failure.
COMPARED_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Retry-After",
    "cf-mitigated",
    "Server",
)


@pytest.fixture
def frozen(upstream: Upstream) -> Upstream:
    """The standard simulator with its clock stopped, so two calls get the same bytes."""
    now = upstream.sim.clock()
    upstream.sim.clock = lambda: now
    upstream.sim.add_account(session_key=SESSION_A, org_uuids=[ORG_A])
    return upstream


async def proxy_for(
    aiohttp_client: AiohttpClient,
    config: Config,
    store: UsageStore | None = None,
    **server_kwargs: Any,
) -> TestClient[web.Request, web.Application]:
    app = create_app(config, poll=False, store=store)
    return await aiohttp_client(app, server_kwargs=server_kwargs)


def project_of(upstream: Upstream, org_uuid: str = ORG_A) -> str:
    return next(iter(upstream.sim.orgs[org_uuid].projects))


def request_for(route: str, upstream: Upstream) -> tuple[str, str, bytes | None]:
    """(method, path with query, body) of a valid call to `route` for org A."""
    project = project_of(upstream)
    org = f"/api/organizations/{ORG_A}"
    web_fetch = b'{"url": "https://example.com/doc", "allowed_urls": ["https://example.com"]}'
    return {
        "usage": ("GET", f"{org}/usage", None),
        "project": ("GET", f"{org}/projects/{project}", None),
        "project_docs": ("GET", f"{org}/projects/{project}/docs", None),
        "project_files": ("GET", f"{org}/projects/{project}/files", None),
        "memory": ("GET", f"{org}/memory?project_uuid={project}", None),
        "web_fetch": ("POST", f"{org}/cowork/web_fetch", web_fetch),
        "organizations": ("GET", "/api/organizations", None),
        "account": ("GET", "/api/account", None),
        "bootstrap": ("GET", "/api/bootstrap", None),
    }[route]


async def direct_and_proxied(
    upstream: Upstream,
    proxy: TestClient[web.Request, web.Application],
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[tuple[int, bytes, dict[str, str]], tuple[int, bytes, dict[str, str]]]:
    """The same request straight to the upstream and through the proxy, raw bytes each."""

    def picked(response: aiohttp.ClientResponse) -> dict[str, str]:
        return {k: response.headers[k] for k in COMPARED_HEADERS if k in response.headers}

    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.request(method, upstream.url + path, headers=headers, data=body) as direct,
    ):
        direct_result = (direct.status, await direct.read(), picked(direct))
    async with proxy.request(
        method, path, headers=headers, data=body, auto_decompress=False
    ) as proxied:
        proxied_result = (proxied.status, await proxied.read(), picked(proxied))
    return direct_result, proxied_result


def metric_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


@pytest.mark.parametrize(
    "route",
    [
        "usage",
        "project",
        "project_docs",
        "project_files",
        "memory",
        "web_fetch",
        "organizations",
        "account",
        "bootstrap",
    ],
)
async def test_every_route_answers_as_the_upstream_does(
    frozen: Upstream, aiohttp_client: AiohttpClient, route: str
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(frozen.url))
    method, path, body = request_for(route, frozen)
    headers = {**AUTH_A, "Content-Type": "application/json", "Accept-Encoding": "identity"}
    direct, proxied = await direct_and_proxied(frozen, proxy, method, path, headers, body)
    assert direct[0] == 200
    assert proxied == direct
    # The upstream saw the same request twice: path, query and body untouched.
    first, second = list(frozen.sim.requests)
    assert (second.method, second.path, second.query_string, second.body) == (
        first.method,
        first.path,
        first.query_string,
        first.body,
    )


async def test_a_session_cookie_works_as_well_as_a_token(
    frozen: Upstream, aiohttp_client: AiohttpClient
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(frozen.url))
    headers = {"Cookie": f"sessionKey={SESSION_A}", "Accept-Encoding": "identity"}
    direct, proxied = await direct_and_proxied(
        frozen, proxy, "GET", f"/api/organizations/{ORG_A}/usage", headers
    )
    assert proxied == direct
    assert proxied[0] == 200
    seen = frozen.sim.requests[-1]
    assert seen.header("Cookie") == f"sessionKey={SESSION_A}"
    assert seen.header("Authorization") is None  # the daemon's TOKEN_A is never lent


async def test_gzip_bytes_pass_through_untouched(
    frozen: Upstream, aiohttp_client: AiohttpClient
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(frozen.url))
    headers = {**AUTH_A, "Accept-Encoding": "gzip"}
    direct, proxied = await direct_and_proxied(
        frozen, proxy, "GET", f"/api/organizations/{ORG_A}/usage", headers
    )
    assert proxied == direct
    _status, raw, relayed_headers = proxied
    assert relayed_headers["Content-Encoding"] == "gzip"
    assert raw.startswith(b"\x1f\x8b")
    assert int(relayed_headers["Content-Length"]) == len(raw)
    assert "claude_code" in json.loads(gzip.decompress(raw))


@pytest.mark.parametrize(
    ("org_uuid", "fault", "status"),
    [
        (ORG_A, Fault(status=401), 401),
        (ORG_A, Fault(status=403, body='{"error": {"type": "permission_error"}}'), 403),
        (ORG_A, Fault(cloudflare=True, retry_after="30"), 403),
        (UNKNOWN_ORG, None, 404),
        (ORG_A, Fault(status=429, retry_after="0"), 429),
        (ORG_A, Fault(status=429, retry_after="Wed, 21 Oct 2026 07:28:00 GMT"), 429),
        (ORG_A, Fault(status=503, retry_after="120"), 503),
    ],
)
async def test_upstream_errors_pass_through_with_retry_after(
    frozen: Upstream,
    aiohttp_client: AiohttpClient,
    org_uuid: str,
    fault: Fault | None,
    status: int,
) -> None:
    if fault is not None:
        frozen.sim.set_fault(org_uuid, fault)
    proxy = await proxy_for(aiohttp_client, make_config(frozen.url))
    direct, proxied = await direct_and_proxied(
        frozen, proxy, "GET", f"/api/organizations/{org_uuid}/usage", AUTH_A
    )
    assert direct[0] == status
    assert proxied == direct
    if fault is not None and fault.retry_after is not None:
        assert proxied[2]["Retry-After"] == fault.retry_after


async def test_upstream_silent_for_timeout_seconds_is_504(
    upstream: Upstream, aiohttp_client: AiohttpClient
) -> None:
    upstream.sim.set_fault(ORG_A, Fault(delay=1.0))
    config = make_config(upstream.url, upstream={"timeout_seconds": 0.2})
    proxy = await proxy_for(aiohttp_client, config)
    response = await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)
    assert response.status == 504
    error = (await response.json())["error"]
    assert error["type"] == "upstream_timeout"
    assert f"127.0.0.1:{upstream.server.port}" in error["message"]
    assert "0.2 s" in error["message"]
    assert TOKEN_A not in error["message"]


async def test_closed_port_is_502(aiohttp_client: AiohttpClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proxy = await proxy_for(aiohttp_client, make_config(f"http://127.0.0.1:{port}"))
    for path in (f"/api/organizations/{ORG_A}/usage", "/api/account"):
        response = await proxy.get(path, headers=AUTH_A)
        assert response.status == 502
        error = (await response.json())["error"]
        assert error["type"] == "upstream_unreachable"
        assert f"127.0.0.1:{port}" in error["message"]
        assert TOKEN_A not in error["message"]


async def test_unresolvable_host_is_502(aiohttp_client: AiohttpClient) -> None:
    proxy = await proxy_for(aiohttp_client, make_config("http://monitor-test.invalid"))
    response = await proxy.get("/api/bootstrap", headers=AUTH_A)
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["type"] == "upstream_unreachable"
    assert "monitor-test.invalid" in error["message"]


async def test_upstream_dropping_the_connection_is_502(
    upstream: Upstream, aiohttp_client: AiohttpClient
) -> None:
    upstream.sim.set_fault(ORG_A, Fault(drop=True))
    proxy = await proxy_for(aiohttp_client, make_config(upstream.url))
    response = await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["type"] == "upstream_connection_error"
    assert "closed the connection" in error["message"]


async def test_upstream_dying_mid_body_truncates_the_answer(
    upstream: Upstream, aiohttp_client: AiohttpClient
) -> None:
    upstream.sim.set_fault(ORG_A, Fault(truncate=True))
    store = UsageStore()
    proxy = await proxy_for(aiohttp_client, make_config(upstream.url), store)
    response = await proxy.get(
        f"/api/organizations/{ORG_A}/usage", headers={**AUTH_A, "Accept-Encoding": "identity"}
    )
    assert response.status == 200  # already sent when the upstream died
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    # Not refreshed from half a body.
    state = store.get(ORG_A)
    assert state is not None
    assert state.snapshot is None


# Every locally refused request: (method, path, headers, body, status, error type, fragment).
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
    aiohttp_client: AiohttpClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    error_type: str,
    fragment: str,
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(upstream.url))
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


async def test_a_chunked_body_over_64_kib_is_413(
    upstream: Upstream, aiohttp_client: AiohttpClient
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 4096

    proxy = await proxy_for(aiohttp_client, make_config(upstream.url))
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
    upstream: Upstream, aiohttp_client: AiohttpClient, target: str
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(upstream.url))
    status, body = await raw_request(proxy, target)
    assert status == 400
    assert json.loads(body)["error"]["type"] == "invalid_path"
    assert list(upstream.sim.requests) == []


async def test_passive_refresh_changes_metrics(
    frozen: Upstream, aiohttp_client: AiohttpClient
) -> None:
    store = UsageStore()
    proxy = await proxy_for(aiohttp_client, make_config(frozen.url), store)
    series = f'claude_usage_utilization_ratio{{org="acme",org_uuid="{ORG_A}",window="claude_code"}}'
    assert series not in await (await proxy.get("/metrics")).text()

    frozen.sim.set_utilization(ORG_A, "claude_code", 42.0)
    response = await proxy.get(
        f"/api/organizations/{ORG_A}/usage", headers={**AUTH_A, "Accept-Encoding": "gzip"}
    )
    assert response.status == 200
    assert (await response.json())["claude_code"]["utilization"] == 42.0

    text = await (await proxy.get("/metrics")).text()
    assert f"{series} 0.42" in text
    # A relayed answer is fresher data, not a poll: poll health is left to the poller.
    assert "claude_usage_up{" not in text
    state = store.get(ORG_A)
    assert state is not None
    assert state.snapshot is not None
    window = state.snapshot.window("claude_code")
    assert window is not None
    assert window.utilization == 0.42
    assert state.last_result is None


async def test_passive_refresh_only_for_configured_orgs_and_good_bodies(
    frozen: Upstream, aiohttp_client: AiohttpClient
) -> None:
    store = UsageStore()
    proxy = await proxy_for(aiohttp_client, make_config(frozen.url), store)
    # Org C is not configured: relayed, not stored.
    response = await proxy.get(f"/api/organizations/{ORG_C}/usage", headers=AUTH_A)
    assert response.status == 200
    assert store.get(ORG_C) is None
    # A 200 that is not JSON goes out as it came and leaves the snapshot alone.
    frozen.sim.set_fault(ORG_A, Fault(status=200, body="{not json", times=1))
    response = await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)
    assert (response.status, await response.read()) == (200, b"{not json")
    state = store.get(ORG_A)
    assert state is not None
    assert state.snapshot is None
    # An error answer refreshes nothing either.
    frozen.sim.set_fault(ORG_A, Fault(status=429, retry_after="0", times=1))
    assert (await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)).status == 429
    assert state.snapshot is None


async def test_metrics_count_every_request_by_route_name(
    upstream: Upstream, aiohttp_client: AiohttpClient
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(upstream.url))
    await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)
    await proxy.get(f"/api/organizations/{ORG_B}/usage", headers={})
    await proxy.get("/api/secret-scanner/one", headers=AUTH_A)
    await proxy.request("PROPFIND", "/api/secret-scanner/two", headers=AUTH_A)
    await proxy.post("/api/account", headers=AUTH_A)
    text = await (await proxy.get("/metrics")).text()
    assert sorted(metric_lines(text, "claude_proxy_requests_total")) == sorted(
        [
            'claude_proxy_requests_total{code="200",endpoint="usage",method="GET"} 1.0',
            'claude_proxy_requests_total{code="401",endpoint="usage",method="GET"} 1.0',
            'claude_proxy_requests_total{code="404",endpoint="unmatched",method="GET"} 1.0',
            'claude_proxy_requests_total{code="404",endpoint="unmatched",method="OTHER"} 1.0',
            'claude_proxy_requests_total{code="405",endpoint="account",method="POST"} 1.0',
        ]
    )
    counts = metric_lines(text, "claude_proxy_request_duration_seconds_count")
    assert 'claude_proxy_request_duration_seconds_count{endpoint="usage"} 2.0' in counts
    assert "secret-scanner" not in text


async def test_org_base_url_chooses_the_upstream_never_the_caller(
    upstream: Upstream, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient
) -> None:
    seen: list[tuple[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append((request.path, request.host))
        return web.json_response({"from": "elsewhere"})

    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", elsewhere)
    other = await aiohttp_server(other_app)
    other_url = str(other.make_url("")).rstrip("/")
    orgs = [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A", "base_url": other_url}]
    proxy = await proxy_for(aiohttp_client, make_config(upstream.url, orgs))
    spoof = {**AUTH_A, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}

    response = await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=spoof)
    assert await response.json() == {"from": "elsewhere"}
    assert seen == [(f"/api/organizations/{ORG_A}/usage", f"127.0.0.1:{other.port}")]
    # Other orgs and the discovery routes use [upstream].base_url.
    assert (await proxy.get(f"/api/organizations/{ORG_B}/usage", headers=spoof)).status == 403
    assert (await proxy.get("/api/account", headers=spoof)).status == 200
    assert [r.header("Host") for r in upstream.sim.requests] == [
        f"127.0.0.1:{upstream.server.port}"
    ] * 2


@pytest.fixture
async def echo(aiohttp_server: AiohttpServer) -> TestServer:
    """A fake upstream that answers with what it received, under hop-by-hop headers."""

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        answer = web.json_response(
            {
                "method": request.method,
                "path_qs": request.raw_path,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode(),
            },
            status=int(request.query.get("status", "200")),
        )
        answer.headers.update(
            {
                "Connection": "close, X-Upstream-Hop",
                "X-Upstream-Hop": "hop",
                "Keep-Alive": "timeout=5",
                "Proxy-Authenticate": "Basic",
                "Trailer": "Expires",
                "X-Upstream-Custom": "kept",
                "Retry-After": "7",
                "Location": "https://elsewhere.example/login",
            }
        )
        answer.headers.add("Set-Cookie", "a=1; Path=/")
        answer.headers.add("Set-Cookie", "b=2; Path=/")
        return answer

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return await aiohttp_server(app)


async def test_header_table_in_both_directions(
    echo: TestServer, aiohttp_client: AiohttpClient
) -> None:
    config = make_config(
        str(echo.make_url("")).rstrip("/"),
        upstream={"user_agent": "daemon-agent/1", "headers": {"anthropic-beta": "daemon-only"}},
    )
    proxy = await proxy_for(aiohttp_client, config)
    sent = [
        ("Authorization", "Bearer caller-token"),
        ("Cookie", "sessionKey=caller-key"),
        ("Cookie", "other=2"),
        ("User-Agent", "claude-code/2.0.1"),
        ("X-Custom", "kept"),
        ("Accept", "application/json"),
        ("Accept-Encoding", "identity"),
        ("Host", "evil.example"),
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "named in Connection"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Proxy-Authorization", "Basic cHJveHk="),
        ("Proxy-Connection", "keep-alive"),
    ]
    query = "b=%2F&a=1&a=2&c"
    target = URL(f"/api/organizations/{ORG_A}/usage?{query}", encoded=True)
    response = await proxy.get(target, headers=sent)
    echoed = await response.json()
    received = [(k.lower(), v) for k, v in echoed["headers"]]
    names = [k for k, _ in received]
    for name, value in sent[:7]:
        assert (name.lower(), value) in received, name
    assert names.count("cookie") == 2
    for dropped in ("x-hop", "keep-alive", "te", "proxy-authorization", "proxy-connection"):
        assert dropped not in names, dropped
    assert dict(received)["host"] == f"127.0.0.1:{echo.port}"
    assert dict(received)["user-agent"] == "claude-code/2.0.1"  # never the daemon's
    assert "anthropic-beta" not in names  # [upstream].headers are for polls only
    assert TOKEN_A not in json.dumps(echoed)
    assert echoed["path_qs"] == f"/api/organizations/{ORG_A}/usage?{query}"

    assert response.headers["X-Upstream-Custom"] == "kept"
    assert response.headers["Retry-After"] == "7"
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    for dropped in ("X-Upstream-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer"):
        assert dropped not in response.headers, dropped


async def test_the_proxy_invents_no_request_headers(
    echo: TestServer, aiohttp_client: AiohttpClient
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(str(echo.make_url("")).rstrip("/")))
    body = '{"url": "https://a.example/", "allowed_urls": [], "extra": {"k": [1, 2]}}'
    response = await proxy.post(
        f"/api/organizations/{ORG_A}/cowork/web_fetch",
        headers=AUTH_A,
        data=body.encode(),
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
    )
    echoed = await response.json()
    names = {k.lower() for k, _ in echoed["headers"]}
    assert names == {"host", "authorization", "content-length"}
    assert echoed["body"] == body
    assert echoed["method"] == "POST"


async def test_redirects_are_relayed_not_followed(
    echo: TestServer, aiohttp_client: AiohttpClient
) -> None:
    proxy = await proxy_for(aiohttp_client, make_config(str(echo.make_url("")).rstrip("/")))
    response = await proxy.get("/api/account?status=302", headers=AUTH_A, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "https://elsewhere.example/login"


@asynccontextmanager
async def production_server(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` the way `monitor run` does: an AppRunner that cancels the handler of a
    caller who went away, with the access logger `monitor run` uses."""
    runner = web.AppRunner(app, access_log_class=ProxyAccessLogger, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def slow_upstream(
    aiohttp_server: AiohttpServer,
) -> tuple[TestServer, dict[str, asyncio.Event]]:
    """A fake upstream that streams forever (`/api/organizations/<uuid>/usage`) or never
    answers (`/api/account`); `gone` is set when its connection to the proxy goes."""
    events = {name: asyncio.Event() for name in ("started", "gone", "release")}

    async def streams(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await response.prepare(request)
            await response.write(b"[" + b'"first",' * 8)
            events["started"].set()
            await events["release"].wait()
            await response.write(b'"second"]')
            while True:
                await asyncio.sleep(0.05)
                await response.write(b" ")
        except (asyncio.CancelledError, ConnectionResetError):
            events["gone"].set()
            raise

    async def silent(request: web.Request) -> web.StreamResponse:
        events["started"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events["gone"].set()
            raise
        return web.Response()

    app = web.Application()
    app.router.add_get("/api/organizations/{org_uuid}/usage", streams)
    app.router.add_get("/api/account", silent)
    return await aiohttp_server(app), events


async def test_answers_stream_before_the_upstream_finishes(
    slow_upstream: tuple[TestServer, dict[str, asyncio.Event]],
) -> None:
    server, events = slow_upstream
    app = create_app(make_config(str(server.make_url("")).rstrip("/")), poll=False)
    async with (
        production_server(app) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/organizations/{ORG_A}/usage", headers=AUTH_A) as response,
    ):
        assert response.status == 200
        first = await response.content.readexactly(len(b"[" + b'"first",' * 8))
        assert first.startswith(b'["first",')
        # The upstream has not finished (it waits for `release`), yet its bytes arrived.
        assert not events["release"].is_set()
        events["release"].set()
        assert (await response.content.readexactly(9)) == b'"second"]'


async def test_caller_hanging_up_mid_answer_cancels_the_upstream_request(
    slow_upstream: tuple[TestServer, dict[str, asyncio.Event]],
) -> None:
    server, events = slow_upstream
    app = create_app(make_config(str(server.make_url("")).rstrip("/")), poll=False)
    async with production_server(app) as url:
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{url}/api/organizations/{ORG_A}/usage", headers=AUTH_A)
            await response.content.readany()
            events["release"].set()
            response.close()  # hang up mid-answer
        await asyncio.wait_for(events["gone"].wait(), timeout=10)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as metrics:
            text = await metrics.text()
    # The status line had gone out, so the request counts with the status sent.
    assert 'claude_proxy_requests_total{code="200",endpoint="usage",method="GET"} 1.0' in text


async def test_caller_hanging_up_before_the_answer_cancels_the_upstream_request(
    slow_upstream: tuple[TestServer, dict[str, asyncio.Event]],
) -> None:
    server, events = slow_upstream
    # A timeout far beyond the wait below: only the hang-up can end the upstream request.
    config = make_config(str(server.make_url("")).rstrip("/"), upstream={"timeout_seconds": 300})
    app = create_app(config, poll=False)
    async with production_server(app) as url:
        async with aiohttp.ClientSession() as session:
            pending = asyncio.ensure_future(session.get(f"{url}/api/account", headers=AUTH_A))
            await asyncio.wait_for(events["started"].wait(), timeout=10)
            pending.cancel()  # hang up while the upstream is still thinking
            with pytest.raises(asyncio.CancelledError):
                await pending
        await asyncio.wait_for(events["gone"].wait(), timeout=10)
        async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as metrics:
            text = await metrics.text()
    assert 'claude_proxy_requests_total{code="499",endpoint="account",method="GET"} 1.0' in text


async def test_credentials_never_reach_the_logs(
    upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "secret-4f1d9a7c-never-log-me"
    upstream.sim.add_account(token=secret, org_uuids=[ORG_A])
    upstream.sim.add_account(session_key=secret, org_uuids=[ORG_A])
    headers = {"Authorization": f"Bearer {secret}", "Cookie": f"sessionKey={secret}"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    orgs = [
        {"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"},
        {"uuid": ORG_B, "name": "beta", "token_env": "TOKEN_B"},
        {"uuid": ORG_C, "name": "gamma", "token_env": "TOKEN_A"},
    ]
    orgs[1]["base_url"] = f"http://127.0.0.1:{closed}"
    upstream.sim.set_fault(ORG_C, Fault(truncate=True))
    app = create_app(make_config(upstream.url, orgs), poll=False)
    with caplog.at_level(logging.DEBUG):
        async with production_server(app) as url, aiohttp.ClientSession() as session:
            for path in (
                f"/api/organizations/{ORG_A}/usage",  # relayed, passive refresh
                f"/api/organizations/{ORG_B}/usage",  # 502
                f"/api/organizations/{ORG_C}/usage",  # truncated mid-answer
                f"/api/organizations/{ORG_A}/memory",  # refused locally
                "/api/account",
            ):
                async with session.get(url + path, headers=headers) as response:
                    with suppress(aiohttp.ClientPayloadError):
                        await response.read()
    assert any(r.name == "aiohttp.access" for r in caplog.records)
    assert any(r.name == "monitor.proxy" for r in caplog.records)
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(record.args)
    assert secret not in caplog.text
    assert TOKEN_B not in caplog.text
