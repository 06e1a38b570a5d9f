"""Headers through the proxy, both ways: what is forwarded, dropped or never invented, and
whose upstream an org's base_url chooses."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.conftest import MakeProxy, MakeServer
from tests.support.config import make_config
from tests.support.upstream import (
    AUTH_A,
    ORG_A,
    ORG_B,
    TOKEN_A,
    Upstream,
    base_url,
)


@pytest.fixture
async def echo(aiohttp_server: MakeServer) -> TestServer:
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


async def test_header_table_in_both_directions(echo: TestServer, make_proxy: MakeProxy) -> None:
    config = make_config(
        base_url(echo),
        upstream={"user_agent": "daemon-agent/1", "headers": {"anthropic-beta": "daemon-only"}},
    )
    proxy = await make_proxy(config)
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
    echo: TestServer, make_proxy: MakeProxy
) -> None:
    proxy = await make_proxy(make_config(base_url(echo)))
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


async def test_redirects_are_relayed_not_followed(echo: TestServer, make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(make_config(base_url(echo)))
    response = await proxy.get("/api/account?status=302", headers=AUTH_A, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "https://elsewhere.example/login"


async def test_org_base_url_chooses_the_upstream_never_the_caller(
    upstream: Upstream, aiohttp_server: MakeServer, make_proxy: MakeProxy
) -> None:
    seen: list[tuple[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append((request.path, request.host))
        return web.json_response({"from": "elsewhere"})

    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", elsewhere)
    other = await aiohttp_server(other_app)
    other_url = base_url(other)
    orgs = [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A", "base_url": other_url}]
    proxy = await make_proxy(make_config(upstream.url, orgs))
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
