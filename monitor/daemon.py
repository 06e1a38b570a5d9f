"""Serve one or more aiohttp apps until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from monitor.access_log import ProxyAccessLogger

log = logging.getLogger("monitor")

# As aiohttp's own TCPSite: the kernel's queue of connections not yet accepted.
LISTEN_BACKLOG = 128
KEEPALIVE_SECONDS = 75.0


@dataclass(frozen=True)
class Listener:
    app: web.Application
    host: str
    port: int
    name: str


class ListenError(Exception):
    pass


async def serve(
    listeners: Sequence[Listener],
    *,
    grace_seconds: float,
    on_started: Callable[[dict[str, str]], None] = lambda _urls: None,
    on_reload: Callable[[], object] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Bind every listener's socket first, so a taken port ends the process before the
    apps start (and send anything upstream); then start the apps in order, call
    `on_started` with their URLs, wait for a stop signal (or `stop`), and close them in
    reverse order. In-flight requests get up to `grace_seconds` to finish; the apps'
    cleanup contexts close sessions and scheduler."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    bound: list[list[socket.socket]] = []
    try:
        for listener in listeners:
            # One at a time: if one fails, `bound` holds those bound so far, to close.
            bound.append(bind(listener))  # noqa: PERF401
        for listener, sockets in zip(listeners, bound, strict=True):
            runner = web.AppRunner(
                listener.app,
                shutdown_timeout=aiohttp_shutdown_timeout(grace_seconds),
                access_log_class=ProxyAccessLogger,
                # A caller hanging up cancels its handler, so the proxy drops the
                # upstream request it was waiting on instead of finishing it for no one.
                handler_cancellation=True,
                # aiohttp keeps an idle keep-alive connection an hour by default; a local
                # daemon has no use for that (75 s, nginx's default).
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            await runner.setup()
            runners.append(runner)
            for sock in sockets:
                await web.SockSite(runner, sock).start()
            urls[listener.name] = listening_url(runner, listener.host, listener.port)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if on_reload is not None:
            loop.add_signal_handler(signal.SIGHUP, on_reload)
        on_started(urls)
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for runner in reversed(runners):
            await runner.cleanup()
        for sockets in bound:  # those no site took over (a failure part-way)
            for sock in sockets:
                sock.close()


def bind(listener: Listener) -> list[socket.socket]:
    """Listening sockets on every address `host` resolves to (as aiohttp's own sites do),
    or ListenError naming the address and why."""
    where = f"{listener.host}:{listener.port}"
    try:
        addresses = socket.getaddrinfo(
            listener.host or None,
            listener.port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
    except OSError as exc:
        raise ListenError(f"cannot listen on {where} ({listener.name}): {exc}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        reason = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {where} ({listener.name}): {reason}") from None
    return sockets


def aiohttp_shutdown_timeout(grace_seconds: float) -> float:
    """AppRunner's `shutdown_timeout` that gives in-flight requests `grace_seconds` in all.

    aiohttp uses its timeout twice: it waits that long for in-flight handlers, then cancels
    their request payloads and waits that long again for the handlers to finish (one that
    no longer reads its body, like a proxied request waiting on the upstream, just goes on),
    and only then cancels them. Half the grace for each phase makes the whole wait the grace.
    """
    return grace_seconds / 2


def listening_url(runner: web.AppRunner, host: str, port: int) -> str:
    """The URL a runner really listens on (port 0 becomes the port the OS chose)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = str(address[0]), int(address[1])
            shown = f"[{host}]" if ":" in host else host
            return f"http://{shown}:{port}"
    return f"http://{host}:{port}"
