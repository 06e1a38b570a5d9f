"""`serve()` in-process: it listens, reports its URLs, answers, and stops when told; a busy
port is a clear error. (Signals to a real process: `tests/system/`.)"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from monitor.daemon import Listener, ListenError, aiohttp_shutdown_timeout, serve


async def hello(_request: web.Request) -> web.Response:
    return web.Response(text="hello")


def app() -> web.Application:
    application = web.Application()
    application.router.add_get("/", hello)
    return application


async def test_serve_reports_where_it_listens_and_stops_when_told() -> None:
    stop = asyncio.Event()
    started: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    serving = asyncio.ensure_future(
        serve(
            [Listener(app(), "127.0.0.1", 0, "monitor")],
            grace_seconds=1,
            on_started=started.set_result,
            stop=stop,
        )
    )
    urls = await asyncio.wait_for(started, 10)
    assert urls["monitor"].startswith("http://127.0.0.1:")
    assert not urls["monitor"].endswith(":0")  # the port the OS chose, not 0
    async with aiohttp.ClientSession() as session, session.get(urls["monitor"] + "/") as answer:
        assert await answer.text() == "hello"
    stop.set()
    await asyncio.wait_for(serving, 10)


async def test_a_busy_port_is_a_listen_error_naming_it(busy_port: int) -> None:
    with pytest.raises(ListenError, match=f"cannot listen on 127.0.0.1:{busy_port} \\(monitor\\)"):
        await serve([Listener(app(), "127.0.0.1", busy_port, "monitor")], grace_seconds=1)


def test_the_grace_is_split_over_aiohttps_two_waits() -> None:
    """aiohttp waits its shutdown timeout twice (handlers, then cancelled payloads): half
    the grace each makes the whole wait the grace, not twice it."""
    assert aiohttp_shutdown_timeout(10) == 5
    assert aiohttp_shutdown_timeout(3) == 1.5
