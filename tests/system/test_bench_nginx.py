"""The benchmark's static upstream is a real nginx answering the exact payload bytes and
Content-Type, whatever characters the payload holds, and the floor relays them as they
are: otherwise the references would not answer what monitor answers."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest

from bench.nginx import start_proxy, start_static
from bench.procs import HOST, Processes, free_port, wait_http
from tests.support.tools import require_tool

# Every character nginx's config syntax treats specially, and a `$` nginx would expand.
HOSTILE = (
    '{"a": "it\'s \\"quoted\\"", "cost": "$5 ${HOME} $", "path": "C:\\\\x", '
    '"end": "; # { } \\n \\t é"}\n\ttrailing\r\n'
).encode()


async def answer(url: str) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers={"Authorization": "Bearer x"}) as resp,
    ):
        return resp.status, resp.headers["Content-Type"], await resp.read()


@pytest.mark.tool
async def test_static_nginx_the_proxy_and_the_floor_answer_the_exact_bytes(
    tmp_path: Path,
) -> None:
    nginx = require_tool("nginx", "apt-get install nginx-light")
    with Processes(tmp_path) as procs:
        static, upstream = start_static(procs, nginx, tmp_path, HOSTILE, "application/x-bench")
        await wait_http(upstream + "/", static, within=30)
        proxy, proxy_url = start_proxy(procs, nginx, tmp_path, int(upstream.rsplit(":", 1)[1]))
        await wait_http(proxy_url + "/", proxy, within=30)
        port = free_port()
        argv = [sys.executable, "-m", "bench.floor", "--port", str(port), "--upstream", upstream]
        floor = procs.start("floor", argv)
        floor_url = f"http://{HOST}:{port}"
        await wait_http(floor_url + "/", floor, within=30)
        for base in (upstream, proxy_url, floor_url):
            status, content_type, body = await answer(base + "/api/organizations/x/usage")
            assert status == 200
            assert content_type == "application/x-bench"
            assert body == HOSTILE
