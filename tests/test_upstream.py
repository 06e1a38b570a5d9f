"""UpstreamClient against the simulator (and small fakes): every failure is a typed result."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.config_source import ConfigSource
from monitor.simulator import CLOUDFLARE_HTML, Fault
from monitor.state import PollResult
from monitor.targets import OrgTarget, configured_targets
from monitor.upstream import (
    MAX_BODY_BYTES,
    MAX_RETRY_AFTER_SECONDS,
    PollError,
    UpstreamClient,
    decode_json_object,
    failure_for_status,
    parse_bootstrap,
    parse_retry_after,
)
from monitor.usage import parse_usage
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, Upstream, fixture_text, make_config

NOW = 1_800_000_000.0
MakeServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def client(upstream: Upstream) -> AsyncIterator[UpstreamClient]:
    config = make_config(upstream.url, upstream={"timeout_seconds": 0.5})
    client = UpstreamClient(ConfigSource(config, loaded_at=0.0))
    await client.open()
    yield client
    await client.close()


def target_for(base_url: str, org_uuid: str = ORG_A) -> OrgTarget:
    config = make_config(base_url)
    return next(t for t in configured_targets(config) if t.uuid == org_uuid)


async def poll_error(client: UpstreamClient, target: OrgTarget) -> PollError:
    with pytest.raises(PollError) as caught:
        await client.fetch_usage(target)
    error = caught.value
    assert TOKEN_A not in str(error)
    assert TOKEN_A not in error.message
    return error


# -- success -----------------------------------------------------------------------------


async def test_usage_of_each_shape(upstream: Upstream, client: UpstreamClient) -> None:
    for org_uuid in (ORG_A, ORG_B):
        snapshot = await client.fetch_usage(target_for(upstream.url, org_uuid))
        assert snapshot == parse_usage(upstream.sim.usage(org_uuid))
        assert snapshot.windows
    request = upstream.sim.requests_for(ORG_A)[-1]
    assert request.header("Authorization") == f"Bearer {TOKEN_A}"
    assert request.header("User-Agent") == "claude-code/2.0"
    assert request.header("Accept") == "application/json"


async def test_configured_headers_and_user_agent_are_sent(upstream: Upstream) -> None:
    config = make_config(
        upstream.url,
        upstream={"user_agent": "claude-code/9.9", "headers": {"anthropic-beta": "x-1"}},
    )
    client = UpstreamClient(ConfigSource(config, loaded_at=0.0))
    await client.open()
    try:
        await client.fetch_usage(configured_targets(config)[0])
    finally:
        await client.close()
    request = upstream.sim.requests_for(ORG_A)[-1]
    assert request.header("User-Agent") == "claude-code/9.9"
    assert request.header("anthropic-beta") == "x-1"


async def test_bootstrap_lists_the_accounts_orgs(
    upstream: Upstream, client: UpstreamClient
) -> None:
    credential = target_for(upstream.url).credential
    found = await client.fetch_bootstrap(upstream.url + "/api/bootstrap", credential)
    assert sorted(org.uuid for org in found) == sorted([ORG_A, ORG_C])


def test_parse_bootstrap_bare_or_under_account() -> None:
    payload = json.loads(fixture_text("account_bootstrap.json"))
    expected = [(ORG_A, "Acme Team"), (ORG_B, "Personal")]
    assert [(o.uuid, o.name) for o in parse_bootstrap(payload)] == expected
    assert [(o.uuid, o.name) for o in parse_bootstrap(payload["account"])] == expected
    messy = {
        "memberships": [
            {"organization": {"uuid": ORG_A.upper(), "name": 5}},
            {"organization": {"uuid": ORG_A, "name": "again"}},
            {"organization": {"uuid": "not-a-uuid"}},
            {"organization": None},
            "junk",
        ]
    }
    assert [(o.uuid, o.name) for o in parse_bootstrap(messy)] == [(ORG_A, None)]
    with pytest.raises(PollError) as caught:
        parse_bootstrap({"account": {"uuid": "x"}})
    assert caught.value.result is PollResult.INVALID_RESPONSE


# -- every simulator fault ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "result", "status"),
    [
        (Fault(status=401), PollResult.UNAUTHORIZED, 401),
        (Fault(status=403), PollResult.FORBIDDEN, 403),
        (Fault(cloudflare=True), PollResult.FORBIDDEN, 403),
        (Fault(status=404), PollResult.NOT_FOUND, 404),
        (Fault(status=429, retry_after="0"), PollResult.RATE_LIMITED, 429),
        (Fault(status=429), PollResult.RATE_LIMITED, 429),
        (Fault(status=500), PollResult.SERVER_ERROR, 500),
        (Fault(status=502), PollResult.SERVER_ERROR, 502),
        (Fault(status=503), PollResult.SERVER_ERROR, 503),
        (Fault(status=400), PollResult.INVALID_RESPONSE, 400),
        (Fault(status=302), PollResult.INVALID_RESPONSE, 302),
        (
            Fault(status=200, body=CLOUDFLARE_HTML, content_type="text/html"),
            PollResult.INVALID_RESPONSE,
            None,
        ),
        (Fault(status=200, body=CLOUDFLARE_HTML), PollResult.INVALID_RESPONSE, None),
        (Fault(status=200, body="[1, 2, 3]"), PollResult.INVALID_RESPONSE, None),
        (Fault(status=200, body='"usage"'), PollResult.INVALID_RESPONSE, None),
        (Fault(status=200, body="null"), PollResult.INVALID_RESPONSE, None),
        (Fault(status=200, body="{not json"), PollResult.INVALID_RESPONSE, None),
        (Fault(status=200, body=""), PollResult.INVALID_RESPONSE, None),
        (Fault(status=200, body="[" * 100_000), PollResult.INVALID_RESPONSE, None),
        (Fault(delay=2.0), PollResult.TIMEOUT, None),
        (Fault(drop=True), PollResult.CONNECTION_ERROR, None),
        (Fault(truncate=True), PollResult.CONNECTION_ERROR, None),
        (Fault(status=503, truncate=True), PollResult.CONNECTION_ERROR, None),
    ],
)
async def test_each_fault_ends_in_its_result(
    upstream: Upstream,
    client: UpstreamClient,
    fault: Fault,
    result: PollResult,
    status: int | None,
) -> None:
    upstream.sim.set_fault(ORG_A, fault)
    error = await poll_error(client, target_for(upstream.url))
    assert error.result is result, error.message
    assert error.status == status
    assert error.message
    if result is not PollResult.RATE_LIMITED:
        assert error.retry_after is None


async def test_429_with_retry_after_120(upstream: Upstream, client: UpstreamClient) -> None:
    upstream.sim.set_fault(ORG_A, Fault(status=429, retry_after="120"))
    error = await poll_error(client, target_for(upstream.url))
    assert error.result is PollResult.RATE_LIMITED
    assert error.retry_after == 120.0
    assert "Rate limited" in error.message or "rate" in error.message.lower()


@pytest.mark.parametrize(("header", "expected"), [("0", 0.0), (None, None), ("soon", None)])
async def test_429_limited_has_no_wait(
    upstream: Upstream, client: UpstreamClient, header: str | None, expected: float | None
) -> None:
    upstream.sim.set_fault(ORG_A, Fault(status=429, retry_after=header))
    error = await poll_error(client, target_for(upstream.url))
    assert error.result is PollResult.RATE_LIMITED
    assert error.retry_after == expected


async def test_real_upstream_answers_without_faults(
    upstream: Upstream, client: UpstreamClient
) -> None:
    # A wrong token is a 401, an org the token cannot see a 403, an unknown org a 404.
    wrong = make_config(upstream.url, environ={"TOKEN_A": "not-a-known-token"})
    error = await poll_error(client, configured_targets(wrong)[0])
    assert error.result is PollResult.UNAUTHORIZED
    other = make_config(upstream.url, [{"uuid": ORG_B, "token_env": "TOKEN_A"}])
    error = await poll_error(client, configured_targets(other)[0])
    assert error.result is PollResult.FORBIDDEN
    upstream.sim.remove_org(ORG_A)
    error = await poll_error(client, target_for(upstream.url))
    assert error.result is PollResult.NOT_FOUND


async def test_an_error_body_that_echoes_the_token_never_carries_it(
    upstream: Upstream, client: UpstreamClient
) -> None:
    target = target_for(upstream.url)
    bodies = [
        json.dumps({"error": {"type": "authentication_error", "message": f"bad {TOKEN_A}"}}),
        # Long enough that a 200-character cut lands inside the token.
        json.dumps({"error": {"message": "x" * 185 + f" {TOKEN_A} rest"}}),
        json.dumps({"error": {"message": "x" * 170 + f"Bearer {TOKEN_A}"}}),
    ]
    for body in bodies:
        upstream.sim.set_fault(ORG_A, Fault(status=401, body=body, times=1))
        error = await poll_error(client, target)
        assert error.result is PollResult.UNAUTHORIZED
        for size in range(8, len(TOKEN_A) + 1):
            assert TOKEN_A[:size] not in error.message, error.message
    upstream.sim.set_fault(ORG_A, Fault(status=200, body=f"oops {TOKEN_A}", times=1))
    error = await poll_error(client, target)
    assert error.result is PollResult.INVALID_RESPONSE


async def test_the_error_message_says_what_happened(
    upstream: Upstream, client: UpstreamClient
) -> None:
    target = target_for(upstream.url)
    upstream.sim.set_fault(ORG_A, Fault(cloudflare=True, times=1))
    assert "HTML" in (await poll_error(client, target)).message
    upstream.sim.set_fault(ORG_A, Fault(status=200, body="[]", times=1))
    assert "list" in (await poll_error(client, target)).message
    upstream.sim.set_fault(ORG_A, Fault(delay=2.0, times=1))
    assert "0.5 s" in (await poll_error(client, target)).message


async def test_unreachable_upstream_is_a_connection_error(unused_tcp_port: int) -> None:
    config = make_config(f"http://127.0.0.1:{unused_tcp_port}")
    client = UpstreamClient(ConfigSource(config, loaded_at=0.0))
    await client.open()
    try:
        error = await poll_error(client, configured_targets(config)[0])
    finally:
        await client.close()
    assert error.result is PollResult.CONNECTION_ERROR


async def test_a_closed_client_refuses_to_poll(upstream: Upstream) -> None:
    client = UpstreamClient(ConfigSource(make_config(upstream.url), loaded_at=0.0))
    with pytest.raises(RuntimeError, match="not open"):
        await client.fetch_usage(target_for(upstream.url))


# -- bodies over 1 MiB (a small fake upstream) -------------------------------------------


async def big_declared(request: web.Request) -> web.Response:
    return web.Response(body=b" " * (MAX_BODY_BYTES + 1), content_type="application/json")


async def big_streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b'{"five_hour": {"utilization": 1}, "pad": "')
    chunk = b"x" * 65536
    for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
        await response.write(chunk)
    await response.write(b'"}')
    return response


async def exactly_limit(request: web.Request) -> web.Response:
    head = b'{"five_hour": {"utilization": 7, "resets_at": null}, "pad": "'
    tail = b'"}'
    pad = b"x" * (MAX_BODY_BYTES - len(head) - len(tail))
    return web.Response(body=head + pad + tail, content_type="application/json")


@pytest.mark.parametrize("handler", [big_declared, big_streamed])
async def test_a_body_over_1_mib_is_an_invalid_response(
    aiohttp_server: MakeServer, handler: Callable[[web.Request], Awaitable[Any]]
) -> None:
    app = web.Application()
    app.router.add_get("/api/organizations/{org_uuid}/usage", handler)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    client = UpstreamClient(ConfigSource(make_config(base), loaded_at=0.0))
    await client.open()
    try:
        error = await poll_error(client, target_for(base))
    finally:
        await client.close()
    assert error.result is PollResult.INVALID_RESPONSE
    assert "1 MiB" in error.message


async def test_a_body_of_exactly_1_mib_is_read(aiohttp_server: MakeServer) -> None:
    app = web.Application()
    app.router.add_get("/api/organizations/{org_uuid}/usage", exactly_limit)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    client = UpstreamClient(ConfigSource(make_config(base), loaded_at=0.0))
    await client.open()
    try:
        snapshot = await client.fetch_usage(target_for(base))
    finally:
        await client.close()
    assert snapshot.utilizations() == {"five_hour": 0.07}


# -- the pure pieces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (401, PollResult.UNAUTHORIZED),
        (403, PollResult.FORBIDDEN),
        (404, PollResult.NOT_FOUND),
        (429, PollResult.RATE_LIMITED),
        (500, PollResult.SERVER_ERROR),
        (503, PollResult.SERVER_ERROR),
        (599, PollResult.SERVER_ERROR),
        (400, PollResult.INVALID_RESPONSE),
        (418, PollResult.INVALID_RESPONSE),
        (301, PollResult.INVALID_RESPONSE),
    ],
)
def test_failure_for_status(status: int, result: PollResult) -> None:
    body = fixture_text("error_rate_limited.json").encode()
    error = failure_for_status(status, body, "application/json", "30", NOW)
    assert error.result is result
    assert error.status == status
    assert error.message == f"HTTP {status}: Rate limited. Please try again later."
    assert error.retry_after == (30.0 if status == 429 else None)


def test_failure_for_status_names_a_cloudflare_page() -> None:
    body = fixture_text("cloudflare_challenge.html").encode()
    error = failure_for_status(403, body, "text/html; charset=utf-8", None, NOW)
    assert error.result is PollResult.FORBIDDEN
    assert "Cloudflare" in error.message
    assert "<html" not in error.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("²", None),  # a Unicode digit: str.isdigit() says yes, float() says no
        ("١٢٠", None),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_is_always_finite_and_bounded() -> None:
    for value in ("9" * 400, "99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"):
        wait = parse_retry_after(value, NOW)
        assert wait is not None
        assert math.isfinite(wait)
        assert wait == MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<!DOCTYPE html><html></html>", "application/json"),
        (b"  <html><body>hi</body></html>", ""),
        (b"{}", "text/html"),
        (b"\xff\xfe{", "application/json"),
        (b"[]", "application/json"),
        (b"1" * 5000, "application/json"),  # over Python's int-digits limit
        (b"[" * 50_000, "application/json"),
    ],
)
def test_decode_json_object_refuses_everything_but_an_object(
    body: bytes, content_type: str
) -> None:
    with pytest.raises(PollError) as caught:
        decode_json_object(body, content_type)
    assert caught.value.result is PollResult.INVALID_RESPONSE


def test_decode_json_object_accepts_an_object() -> None:
    assert decode_json_object(b'{"a": 1}', "application/json") == {"a": 1}
