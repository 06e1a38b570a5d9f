"""A real Prometheus scrapes the daemon with `prometheus/rules.yml` and `alerts.yml` loaded
as shipped, and records the pace the status page shows.

The simulator's `five_hour` window fills at 1.3 times an even pace, so its pace is 1.3 at
every moment; its `claude_code` window has no known length, so it gets no pace. The test
waits (bounded) for the recorded series, then compares them with the page.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient

from monitor.app import create_app
from monitor.simulator import Simulator, WindowSpec, simulator_app
from monitor.window_view import TIMES
from tests.support.config import make_config
from tests.support.tools import require_tool
from tests.support.upstream import ORG_A, TOKEN_A

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent.parent / "prometheus"
RULE_FILES = [str(PROMETHEUS_DIR / "rules.yml"), str(PROMETHEUS_DIR / "alerts.yml")]
DEADLINE_SECONDS = 60.0
HOUR = 3600.0

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
MakeServer = Callable[..., Awaitable[Any]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def query(session: aiohttp.ClientSession, url: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector of `expr`, or [] while Prometheus is not answering yet."""
    try:
        async with session.get(f"{url}/api/v1/query", params={"query": expr}) as response:
            if response.status != 200:
                return []
            answer = await response.json()
    except aiohttp.ClientConnectionError:
        return []
    return list(answer["data"]["result"])


@pytest.mark.tool
async def test_prometheus_records_the_pace_the_status_page_shows(
    aiohttp_client: MakeClient, aiohttp_server: MakeServer, tmp_path: Path
) -> None:
    binary = require_tool("prometheus", "apt-get install prometheus")
    sim = Simulator()
    sim.add_org(
        ORG_A,
        "acme",
        plan="max",
        shape="oauth_2025",
        windows={
            "five_hour": WindowSpec.filling(5 * HOUR, 130.0, phase=0.4),
            "claude_code": WindowSpec.filling(5 * HOUR, 50.0, phase=0.4),
        },
    )
    sim.add_account(token=TOKEN_A, org_uuids=[ORG_A])
    upstream = await aiohttp_server(simulator_app(sim))
    orgs = [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"}]
    config = make_config(str(upstream.make_url("")).rstrip("/"), orgs)
    client = await aiohttp_client(create_app(config))

    settings = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": RULE_FILES,
        "scrape_configs": [
            {
                "job_name": "claude-monitor",
                "static_configs": [{"targets": [f"127.0.0.1:{client.port}"]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            url = f"http://{address}"
            deadline = time.monotonic() + DEADLINE_SECONDS
            paces: list[dict[str, Any]] = []
            while not paces:
                assert process.returncode is None, log.read_text(errors="replace")[-3000:]
                if time.monotonic() > deadline:
                    pytest.fail(f"no pace recorded:\n{log.read_text(errors='replace')[-3000:]}")
                await asyncio.sleep(0.5)
                paces = await query(session, url, "claude_usage:pace_ratio")
            projected = await query(session, url, "claude_usage:projected_utilization_ratio")
    finally:
        process.terminate()
        await process.wait()

    assert [p["metric"]["window"] for p in paces] == ["five_hour"]  # claude_code: no length
    assert paces[0]["metric"]["org"] == "acme"
    assert float(paces[0]["value"][1]) == pytest.approx(1.3, abs=0.005)
    assert float(projected[0]["value"][1]) == pytest.approx(1.3, abs=0.005)
    page = await (await client.get("/")).text()
    lines = re.findall(r'<p class="pace[^"]*">([^<]*)</p>', page)
    assert any(line.startswith(f"pace 1.3{TIMES} — at this rate 100% in ") for line in lines)
