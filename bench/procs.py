"""Processes the benchmark starts: free loopback ports, start/stop, CPU time and RSS.

Everything binds 127.0.0.1. Every process started through `Processes` is terminated
(SIGTERM, then SIGKILL after a grace period) when the `with` block ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

import aiohttp

HOST = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/statm."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


class Processes(AbstractContextManager["Processes"]):
    """Start child processes; all of them are stopped when the block ends."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self._log_dir / f"{name}.log").open("ab")
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
            )
        finally:
            log.close()
        self._children.append((name, child))
        return child

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self._log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, child: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        self._children = [(n, c) for n, c in self._children if c is not child]

    def stop_all(self) -> None:
        for _name, child in reversed(list(self._children)):
            self.stop(child)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


async def wait_http(
    url: str,
    child: subprocess.Popen[bytes],
    *,
    within: float,
    statuses: tuple[int, ...] = (200,),
    interval: float = 0.05,
) -> float:
    """Poll `url` until it answers one of `statuses`; seconds waited. Raises if the child
    exits or `within` seconds pass."""
    started = time.monotonic()
    deadline = started + within
    async with aiohttp.ClientSession() as session:
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"{url}: process exited with status {child.returncode}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    await resp.read()
                    if resp.status in statuses:
                        return time.monotonic() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: not answering {statuses} within {within:g} s")
            await asyncio.sleep(interval)
