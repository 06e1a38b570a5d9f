"""`monitor` as a real process: start it, wait for it, signal it, read its log.

Its output goes to files rather than pipes, so a process that logs a lot never blocks on a
pipe nobody reads, and the log can be read while it runs. Async tests call the blocking
waits through the `*_async` methods, which keep the event loop (and the test's own
servers) running meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.config import write_config
from tests.support.net import free_port, get
from tests.support.paths import ROOT
from tests.support.waiting import until_sync

Check = Callable[[int, str], bool]


# What coverage's `patch = subprocess` hands a Python child so that it measures itself.
COVERAGE_VARIABLES = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


def untraced_environ() -> dict[str, str]:
    """This process's environment, minus what would make a Python child trace itself."""
    return {k: v for k, v in os.environ.items() if k not in COVERAGE_VARIABLES}


def any_answer(_status: int, _body: str) -> bool:
    return True


def status_200(status: int, _body: str) -> bool:
    return status == 200


PYTHON_M_MONITOR = ("-m", "monitor")


class MonitorProcess:
    """`python -m monitor ARGS`, run from the repository, stdout and stderr captured.
    `launcher` replaces `-m monitor` (python's own arguments before ARGS)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = PYTHON_M_MONITOR,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="monitor-process-")
        self._out = Path(self._dir.name) / "stdout"
        self._err = Path(self._dir.name) / "stderr"
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *launcher, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **(env or {})},
                cwd=ROOT,
            )

    @property
    def stdout(self) -> str:
        return self._out.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self._err.read_text(encoding="utf-8", errors="replace")

    def _still_running(self) -> None:
        if self.proc.poll() is not None:
            self.proc.wait()
            message = f"exited {self.proc.returncode}: {self.stdout}\n{self.stderr}"
            raise AssertionError(message)

    def wait_until(self, url: str, check: Check = any_answer, timeout: float = 30) -> str:
        """GET `url` until it answers and `check(status, body)` agrees; the body."""

        def answered() -> str | None:
            self._still_running()
            try:
                status, body = get(url)
            except OSError:
                return None
            return body if check(status, body) else None

        return until_sync(answered, f"{url} to answer as expected", timeout=timeout)

    def wait_for_log(self, needle: str, timeout: float = 30) -> str:
        """Wait until stderr holds `needle`; stderr so far."""

        def logged() -> str | None:
            text = self.stderr
            if needle in text:
                return text
            self._still_running()
            return None

        return until_sync(logged, f"{needle!r} in the log", timeout=timeout)

    def send_signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> tuple[int, str, str]:
        """Wait for the exit: (status, stdout, stderr). Still running at `timeout`: killed,
        and the test fails."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running after {timeout:g} s:\n{self.stderr}") from None
        return code, self.stdout, self.stderr

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20
    ) -> tuple[int, str, str]:
        """Send `sig` and wait for the exit: (status, stdout, stderr)."""
        self.send_signal(sig)
        return self.wait(timeout)

    async def wait_until_async(
        self, url: str, check: Check = any_answer, within: float = 30
    ) -> str:
        """`wait_until` in a thread: the test's event loop (and its servers) go on."""
        return await asyncio.to_thread(self.wait_until, url, check, within)

    async def wait_for_log_async(self, needle: str, within: float = 30) -> str:
        """`wait_for_log` in a thread."""
        return await asyncio.to_thread(self.wait_for_log, needle, within)

    async def wait_async(self, within: float = 20) -> tuple[int, str, str]:
        """`wait` in a thread."""
        return await asyncio.to_thread(self.wait, within)

    def kill(self) -> None:
        """Kill it if it still runs, and remove its output files."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._dir.cleanup()


def assert_clean_exit(code: int, err: str) -> None:
    """Exit 0 with nothing left open and no traceback in the log."""
    assert code == 0, err
    for sign in (
        "Unclosed client session",
        "Unclosed connector",
        "Traceback",
        "raised an exception",
        "Task was destroyed",
    ):
        assert sign not in err, err


async def run_serving(
    start: Callable[[list[str], dict[str, str]], MonitorProcess],
    config: Path,
    base_url: str,
    orgs: list[dict[str, Any]],
    env: dict[str, str],
    **sections: Any,
) -> tuple[MonitorProcess, int]:
    """`monitor run` on a free port, its config written to `config` (`write_config` with
    `sections`; `server` gets the port added), once `/healthz` answers 200."""
    port = free_port()
    server = {"port": port, **sections.pop("server", {})}
    write_config(config, base_url, orgs, server=server, **sections)
    monitor = start(["run", "--config", str(config)], env)
    await monitor.wait_until_async(f"http://127.0.0.1:{port}/healthz", status_200)
    return monitor, port
