"""`[upstream] timeout_seconds` bounds the whole proxied exchange, headers and body."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import MakeClient, MakeServer
from tests.support.config import make_config
from tests.support.upstream import ORG_A, TOKEN_A

DEADLINE = 0.5  # timeout_seconds in these tests
AUTH = {"Authorization": f"Bearer {TOKEN_A}"}


class Dripping:
    """An upstream that sends its headers at once, then one byte every `every` seconds,
    for ever (until the caller goes away)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.sent = 0
        self.gone = asyncio.Event()

    async def usage(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b" ")
                self.sent += 1
                await asyncio.sleep(self.every)
        except (ConnectionError, asyncio.CancelledError):
            self.gone.set()
            raise

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/organizations/{org_uuid}/usage", self.usage)
        return app


async def test_an_upstream_that_drips_its_body_is_cut_at_the_deadline(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    drip = Dripping(every=0.05)
    server = await aiohttp_server(drip.app())
    config = make_config(
        str(server.make_url("")).rstrip("/"), upstream={"timeout_seconds": DEADLINE}
    )
    client = await make_client(config, poll=False)
    response = await client.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH)
    assert response.status == 200  # the headers came in time
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()  # a cut body never passes for a whole one
    # The upstream request was given up too: it stops being read at the deadline, so it
    # sent at most DEADLINE / every bytes (and a few more while the socket closed).
    await asyncio.wait_for(drip.gone.wait(), 10)
    assert drip.sent < DEADLINE / drip.every * 3, f"{drip.sent} bytes dripped"
    text = await (await client.get("/metrics")).text()
    assert 'claude_proxy_requests_total{code="200",endpoint="usage",method="GET"} 1.0' in text


async def test_an_upstream_silent_before_its_headers_is_504_at_the_deadline(
    aiohttp_server: MakeServer, make_client: MakeClient
) -> None:
    async def silent(_request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_get("/api/organizations/{org_uuid}/usage", silent)
    server = await aiohttp_server(app)
    config = make_config(
        str(server.make_url("")).rstrip("/"), upstream={"timeout_seconds": DEADLINE}
    )
    client = await make_client(config, poll=False)
    response = await client.get(f"/api/organizations/{ORG_A}/usage", headers=AUTH)
    assert response.status == 504
    error = (await response.json())["error"]
    assert error["type"] == "upstream_timeout"
    assert (
        "did not answer within 0.5 s ([upstream] timeout_seconds, the whole exchange)"
        in (error["message"])
    )
