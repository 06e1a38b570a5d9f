"""UpstreamClient against the simulator (and small fakes): every failure is a typed result."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from monitor.config_source import ConfigSource
from monitor.schema import Config
from monitor.simulator import CLOUDFLARE_HTML, Fault
from monitor.state import PollResult
from monitor.targets import OrgTarget, configured_targets
from monitor.upstream import (
    MAX_BODY_BYTES,
    PollError,
    UpstreamClient,
)
from monitor.usage import parse_usage
from tests.conftest import MakeServer
from tests.support.config import make_config
from tests.support.net import free_port
from tests.support.upstream import ORG_A, ORG_B, ORG_C, TOKEN_A, Upstream, base_url

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


MakeUpstreamClient = Callable[[Config], Awaitable[UpstreamClient]]


@pytest.fixture
async def make_upstream_client() -> AsyncIterator[MakeUpstreamClient]:
    """`await make_upstream_client(config)`: an open UpstreamClient, closed at the end."""
    opened: list[UpstreamClient] = []

    async def make(config: Config) -> UpstreamClient:
        client = UpstreamClient(ConfigSource(config, loaded_at=0.0))
        await client.open()
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.close()


@pytest.fixture
async def client(upstream: Upstream, make_upstream_client: MakeUpstreamClient) -> UpstreamClient:
    """An open client for the standard simulator, with a 0.5 s timeout."""
    return await make_upstream_client(make_config(upstream.url, upstream={"timeout_seconds": 0.5}))


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


async def test_configured_headers_and_user_agent_are_sent(
    upstream: Upstream, make_upstream_client: MakeUpstreamClient
) -> None:
    config = make_config(
        upstream.url,
        upstream={"user_agent": "claude-code/9.9", "headers": {"anthropic-beta": "x-1"}},
    )
    client = await make_upstream_client(config)
    await client.fetch_usage(configured_targets(config)[0])
    request = upstream.sim.requests_for(ORG_A)[-1]
    assert request.header("User-Agent") == "claude-code/9.9"
    assert request.header("anthropic-beta") == "x-1"


async def test_bootstrap_lists_the_accounts_orgs(
    upstream: Upstream, client: UpstreamClient
) -> None:
    credential = target_for(upstream.url).credential
    found = await client.fetch_bootstrap(upstream.url + "/api/bootstrap", credential)
    assert sorted(org.uuid for org in found) == sorted([ORG_A, ORG_C])


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


async def test_unreachable_upstream_is_a_connection_error(
    make_upstream_client: MakeUpstreamClient,
) -> None:
    config = make_config(f"http://127.0.0.1:{free_port()}")
    client = await make_upstream_client(config)
    error = await poll_error(client, configured_targets(config)[0])
    assert error.result is PollResult.CONNECTION_ERROR


async def test_a_closed_client_refuses_to_poll(upstream: Upstream) -> None:
    client = UpstreamClient(ConfigSource(make_config(upstream.url), loaded_at=0.0))
    with pytest.raises(RuntimeError, match="not open"):
        await client.fetch_usage(target_for(upstream.url))


# -- bodies over 1 MiB (a small fake upstream) -------------------------------------------


async def big_declared(_request: web.Request) -> web.Response:
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


async def small_gzip_of_a_big_body(_request: web.Request) -> web.Response:
    """A few kilobytes on the wire, declared as such, that inflate to over 1 MiB."""
    body = gzip.compress(b'{"pad": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}')
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return web.Response(body=body, headers=headers)


async def exactly_limit(_request: web.Request) -> web.Response:
    head = b'{"five_hour": {"utilization": 7, "resets_at": null}, "pad": "'
    tail = b'"}'
    pad = b"x" * (MAX_BODY_BYTES - len(head) - len(tail))
    return web.Response(body=head + pad + tail, content_type="application/json")


async def serve_usage(aiohttp_server: MakeServer, handler: Handler) -> str:
    """A fake upstream whose usage route is `handler`; its base URL."""
    app = web.Application()
    app.router.add_get("/api/organizations/{org_uuid}/usage", handler)
    return base_url(await aiohttp_server(app))


@pytest.mark.parametrize("handler", [big_declared, big_streamed, small_gzip_of_a_big_body])
async def test_a_body_over_1_mib_is_an_invalid_response(
    aiohttp_server: MakeServer, make_upstream_client: MakeUpstreamClient, handler: Handler
) -> None:
    base = await serve_usage(aiohttp_server, handler)
    client = await make_upstream_client(make_config(base))
    error = await poll_error(client, target_for(base))
    assert error.result is PollResult.INVALID_RESPONSE
    assert "1 MiB" in error.message


async def test_a_body_of_exactly_1_mib_is_read(
    aiohttp_server: MakeServer, make_upstream_client: MakeUpstreamClient
) -> None:
    base = await serve_usage(aiohttp_server, exactly_limit)
    client = await make_upstream_client(make_config(base))
    snapshot = await client.fetch_usage(target_for(base))
    assert snapshot.utilizations() == {"five_hour": 0.07}
