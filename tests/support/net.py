"""Ports and plain HTTP for tests that talk to a real process."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def refused(port: int) -> bool:
    """True if nothing accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET a local URL: (status, body), HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:  # its socket, closed now rather than by the garbage collector
            return exc.code, exc.read().decode()
