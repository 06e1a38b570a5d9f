"""A real Prometheus for the tests that need a scraper: started on a free port with a
config that scrapes one target every second and loads the given rule files, asked over
its HTTP API, and stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.net import free_port
from tests.support.waiting import until

DEADLINE_SECONDS = 60.0
POLL_EVERY = 0.5


def prometheus_config(target: str, rule_files: Sequence[Path]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": "claude-monitor",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target]}],
            }
        ],
    }


class Prometheus:
    """A Prometheus subprocess and its HTTP API."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def get(self, session: aiohttp.ClientSession, path: str, **params: str) -> Any:
        if self.process.returncode is not None:
            pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.logs()}")
        try:
            async with session.get(self.url + path, params=params) as response:
                if response.status != 200:
                    return None
                return await response.json()
        except aiohttp.ClientConnectionError:
            return None  # not listening yet

    async def query(self, session: aiohttp.ClientSession, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr`, or [] while Prometheus is not answering yet."""
        answer = await self.get(session, "/api/v1/query", query=expr)
        return list(answer["data"]["result"]) if answer else []

    async def wait_for(self, what: str, check: Callable[[], Awaitable[Any]]) -> Any:
        """Call `check` every POLL_EVERY seconds until it returns something truthy."""
        try:
            return await until(check, what, timeout=DEADLINE_SECONDS, interval=POLL_EVERY)
        except AssertionError as exc:
            pytest.fail(f"{exc}:\n{self.logs()}")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_prometheus(
    binary: str, target: str, tmp_path: Path, rule_files: Sequence[Path]
) -> Prometheus:
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(target, rule_files)), encoding="utf-8")
    log = tmp_path / "prometheus.log"
    address = f"127.0.0.1:{free_port()}"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={address}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    return Prometheus(process, f"http://{address}", log)
