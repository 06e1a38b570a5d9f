"""The proxy relays: every route answers as the upstream does (compared byte for byte with
a direct call), errors pass through, an upstream that is silent, closed or dies is mapped
to the proxy's errors, and a relayed usage answer refreshes `/metrics`."""

from __future__ import annotations

import gzip
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from monitor.simulator import Fault
from monitor.state import UsageStore
from tests.conftest import MakeProxy
from tests.support.config import make_config
from tests.support.metrics import metric_lines
from tests.support.net import free_port
from tests.support.upstream import (
    AUTH_A,
    ORG_A,
    ORG_B,
    ORG_C,
    TOKEN_A,
    Upstream,
)

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


async def proxy_error(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """The proxy's own error answer: its status, and the `error` object of its JSON body."""
    assert response.status == status
    error: dict[str, Any] = (await response.json())["error"]
    return error


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
    frozen: Upstream, make_proxy: MakeProxy, route: str
) -> None:
    proxy = await make_proxy(make_config(frozen.url))
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
    frozen: Upstream, make_proxy: MakeProxy
) -> None:
    proxy = await make_proxy(make_config(frozen.url))
    headers = {"Cookie": f"sessionKey={SESSION_A}", "Accept-Encoding": "identity"}
    direct, proxied = await direct_and_proxied(
        frozen, proxy, "GET", f"/api/organizations/{ORG_A}/usage", headers
    )
    assert proxied == direct
    assert proxied[0] == 200
    seen = frozen.sim.requests[-1]
    assert seen.header("Cookie") == f"sessionKey={SESSION_A}"
    assert seen.header("Authorization") is None  # the daemon's TOKEN_A is never lent


async def test_gzip_bytes_pass_through_untouched(frozen: Upstream, make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(make_config(frozen.url))
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
    make_proxy: MakeProxy,
    org_uuid: str,
    fault: Fault | None,
    status: int,
) -> None:
    if fault is not None:
        frozen.sim.set_fault(org_uuid, fault)
    proxy = await make_proxy(make_config(frozen.url))
    direct, proxied = await direct_and_proxied(
        frozen, proxy, "GET", f"/api/organizations/{org_uuid}/usage", AUTH_A
    )
    assert direct[0] == status
    assert proxied == direct
    if fault is not None and fault.retry_after is not None:
        assert proxied[2]["Retry-After"] == fault.retry_after


async def test_upstream_silent_for_timeout_seconds_is_504(
    upstream: Upstream, make_proxy: MakeProxy
) -> None:
    upstream.sim.set_fault(ORG_A, Fault(delay=1.0))
    config = make_config(upstream.url, upstream={"timeout_seconds": 0.2})
    proxy = await make_proxy(config)
    response = await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)
    error = await proxy_error(response, 504)
    assert error["type"] == "upstream_timeout"
    assert f"127.0.0.1:{upstream.server.port}" in error["message"]
    assert "0.2 s" in error["message"]
    assert TOKEN_A not in error["message"]


async def test_closed_port_is_502(make_proxy: MakeProxy) -> None:
    port = free_port()
    proxy = await make_proxy(make_config(f"http://127.0.0.1:{port}"))
    for path in (f"/api/organizations/{ORG_A}/usage", "/api/account"):
        response = await proxy.get(path, headers=AUTH_A)
        error = await proxy_error(response, 502)
        assert error["type"] == "upstream_unreachable"
        assert f"127.0.0.1:{port}" in error["message"]
        assert TOKEN_A not in error["message"]


async def test_unresolvable_host_is_502(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(make_config("http://monitor-test.invalid"))
    response = await proxy.get("/api/bootstrap", headers=AUTH_A)
    error = await proxy_error(response, 502)
    assert error["type"] == "upstream_unreachable"
    assert "monitor-test.invalid" in error["message"]


async def test_upstream_dropping_the_connection_is_502(
    upstream: Upstream, make_proxy: MakeProxy
) -> None:
    upstream.sim.set_fault(ORG_A, Fault(drop=True))
    proxy = await make_proxy(make_config(upstream.url))
    response = await proxy.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH_A)
    error = await proxy_error(response, 502)
    assert error["type"] == "upstream_connection_error"
    assert "closed the connection" in error["message"]


async def test_upstream_dying_mid_body_truncates_the_answer(
    upstream: Upstream, make_proxy: MakeProxy
) -> None:
    upstream.sim.set_fault(ORG_A, Fault(truncate=True))
    store = UsageStore()
    proxy = await make_proxy(make_config(upstream.url), store)
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
async def test_passive_refresh_changes_metrics(frozen: Upstream, make_proxy: MakeProxy) -> None:
    store = UsageStore()
    proxy = await make_proxy(make_config(frozen.url), store)
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
    frozen: Upstream, make_proxy: MakeProxy
) -> None:
    store = UsageStore()
    proxy = await make_proxy(make_config(frozen.url), store)
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
    upstream: Upstream, make_proxy: MakeProxy
) -> None:
    proxy = await make_proxy(make_config(upstream.url))
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
