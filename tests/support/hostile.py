"""An upstream that misbehaves on the wire on purpose, and figures read from a process.

`HostileUpstream` is a bare asyncio server, not aiohttp: it must be able to promise bytes
it never sends, hold a connection open after a short body, or drip a byte at a time,
which a well-behaved HTTP server library will not do. It serves on the test's event loop;
each request path can be given its own behaviour, and anything else gets a small usage
answer, so the daemon's own polls of other orgs succeed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.support.fakes import USAGE
from tests.support.process import MonitorProcess, assert_clean_exit

# Acts out an answer on the connection, once the request head has been read.
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def head(length: int, content_type: str = "application/json") -> bytes:
    """A 200 status line and headers that announce a body of `length` bytes."""
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def answer(body: bytes, status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def raw(data: bytes) -> Behaviour:
    """Send `data` as it is (status line, headers and body), then close."""

    async def act(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return act


def payload(body: bytes) -> Behaviour:
    """A complete, well-framed 200 answer with `body` as it is (valid JSON or not)."""
    return raw(answer(body))


@dataclass
class Drip:
    """Headers at once (announcing a large body), then one byte every `every` seconds until
    the peer goes; `sent` counts the bytes, `gone` is set when the peer hung up."""

    every: float
    sent: int = 0
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(1_000_000))
        try:
            while True:
                await writer.drain()  # raises once the peer has gone
                writer.write(b" ")
                self.sent += 1
                await asyncio.sleep(self.every)
        except ConnectionError:
            pass
        finally:
            self.gone.set()


def short_then_close(announced: int, body: bytes) -> Behaviour:
    """Announce `announced` bytes, send `body` (fewer), then close the connection."""
    return raw(head(announced) + body)


def short_then_hold(announced: int, body: bytes) -> Behaviour:
    """Announce `announced` bytes, send `body` (fewer), then keep the connection open,
    silent, until the peer closes it."""

    async def act(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(announced) + body)
        await writer.drain()
        await reader.read()  # the request was read whole: this ends when the peer closes

    return act


@dataclass
class Stream:
    """A body of `total` bytes, announced, sent as fast as the peer reads it, in chunks
    that differ from each other (so a repeated or lost chunk changes the digest)."""

    total: int
    chunk: int = 64 * 1024
    digest: str = ""
    sent: int = 0

    async def __call__(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head(self.total, "application/octet-stream"))
        digest = hashlib.sha256()
        pattern = bytes(range(256)) * (self.chunk // 256 + 1)
        index = 0
        while self.sent < self.total:
            piece = (index.to_bytes(8, "big") + pattern)[: min(self.chunk, self.total - self.sent)]
            digest.update(piece)
            writer.write(piece)
            await writer.drain()
            self.sent += len(piece)
            index += 1
        self.digest = digest.hexdigest()


class HostileUpstream:
    """A raw HTTP server on 127.0.0.1: `behaviours[path]` answers that path; any other
    path gets a small usage payload."""

    def __init__(self) -> None:
        self.behaviours: dict[str, Behaviour] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode().partition("?")[0]
            act = self.behaviours.get(path, payload(json.dumps(USAGE).encode()))
            await act(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


def proc_status(pid: int, field_name: str) -> int:
    """A `kB` (or count) field of /proc/PID/status, e.g. VmRSS, as a number (bytes for kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            number, *unit = line.split()[1:]
            return int(number) * (1024 if unit == ["kB"] else 1)
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    """How many file descriptors process `pid` has open."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def reset_peak_rss(pid: int) -> None:
    """Reset process `pid`'s VmHWM (its peak resident memory) to its current RSS, so that
    VmHWM read later is the exact peak since now, with no sample missed (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def accepted_connections(pid: int, port: int) -> int:
    """How many connections process `pid` holds open that came in on its listening
    `port` (from /proc: its socket fds matched against the TCP tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            listening = fields[3] == "0A"
            if local_port == port and not listening and fields[9] in inodes:
                count += 1
    return count


async def stopped_cleanly(monitor: MonitorProcess) -> str:
    """SIGTERM, then exit 0 with nothing left open and no traceback logged; the log.
    (A process stopped so also writes its coverage data; a killed one would not.)"""
    monitor.send_signal(signal.SIGTERM)
    code, _, log = await monitor.wait_async()
    assert_clean_exit(code, log)
    return log
