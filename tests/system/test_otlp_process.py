"""`monitor` as a real process, with and without the `otlp` extra.

Without the extra (OpenTelemetry made unimportable in the child), the daemon runs as
ever, and a config with `[otlp]` is refused naming the extra. With it, `monitor run`
pushes on its own schedule and once more when it stops.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

from aiohttp import web

from tests.support.net import free_port
from tests.support.otlp import METRICS_PATH, OtlpReceiver
from tests.support.process import ROOT, MonitorProcess, assert_clean_exit
from tests.support.upstream import ORG_A, TOKEN_A, ThreadedSimulator
from tests.support.waiting import until_sync

# Run `python -m monitor ARGS` with every `opentelemetry` module unimportable, as when
# the extra is not installed.
WITHOUT_EXTRA = """
import importlib.abc, runpy, sys

class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
runpy.run_module("monitor", run_name="__main__", alter_sys=True)
"""
REFUSAL = "otlp: needs the otlp extra, which is not installed: pip install 'monitor[otlp]'"


def write_config(path: Path, upstream: str, port: int, otlp: str = "") -> Path:
    path.write_text(
        f'[server]\nport = {port}\n[upstream]\nbase_url = "{upstream}"\n'
        f'[[orgs]]\nuuid = "{ORG_A}"\nname = "acme"\ntoken_env = "TOKEN_A"\n{otlp}'
    )
    return path


def without_extra(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WITHOUT_EXTRA, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TOKEN_A": TOKEN_A},
    )


class WithoutExtra(MonitorProcess):
    """`MonitorProcess`, started with OpenTelemetry unimportable."""

    def __init__(self, *args: str) -> None:
        self.proc = without_extra(*args)


def test_without_the_extra_the_daemon_runs_as_ever(tmp_path: Path) -> None:
    port = free_port()
    with ThreadedSimulator() as served:
        config = write_config(tmp_path / "config.toml", served.url, port)
        daemon = WithoutExtra("run", "--config", str(config))
        try:
            body = daemon.wait_until(
                f"http://127.0.0.1:{port}/metrics",
                lambda status, text: status == 200 and 'claude_usage_up{org="acme"' in text,
            )
        finally:
            code, _, err = daemon.stop()
    assert "claude_monitor_otlp_exports" not in body
    assert_clean_exit(code, err)


def test_without_the_extra_an_otlp_section_is_refused(tmp_path: Path) -> None:
    otlp = '[otlp]\nendpoint = "http://127.0.0.1:4318/v1/metrics"\n'
    config = write_config(tmp_path / "config.toml", "http://127.0.0.1:9", free_port(), otlp)
    for command in ("check-config", "run"):
        child = without_extra(command, "--config", str(config))
        out, err = child.communicate(timeout=60)
        assert child.returncode == 2, (command, out, err)
        assert f"  {REFUSAL}" in err.splitlines(), err


class ThreadedReceiver:
    """An OTLP receiver on its own loop and thread, for a daemon in another process."""

    def __init__(self) -> None:
        self.receiver = OtlpReceiver()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.receiver.app(), access_log=None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""

    def __enter__(self) -> ThreadedReceiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}{METRICS_PATH}"

    def count(self) -> int:
        async def read() -> int:
            return len(self.receiver.received)

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def test_the_daemon_pushes_on_its_interval_and_once_more_at_stop(tmp_path: Path) -> None:
    port = free_port()
    with ThreadedSimulator() as served, ThreadedReceiver() as receiver:
        otlp = f'[otlp]\nendpoint = "{receiver.url}"\ninterval_seconds = 1\n'
        config = write_config(tmp_path / "config.toml", served.url, port, otlp)
        daemon = MonitorProcess(["run", "--config", str(config)], env={"TOKEN_A": TOKEN_A})
        try:
            until_sync(lambda: receiver.count() >= 2, "two pushes on the interval")
        finally:
            pushed = receiver.count()
            code, _, err = daemon.stop()
        assert receiver.count() > pushed  # the last values, pushed at stop
    assert_clean_exit(code, err)
    assert f"otlp push to {receiver.url} every 1 s" in err
    assert "otlp push failed" not in err
