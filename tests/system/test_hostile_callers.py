"""Callers that push on the edges of what a request may be, against a real `monitor run`:
heads past aiohttp's limits, bodies past 64 KiB, methods no route takes, bodies that are
JSON only in name. (Connections that never finish a request: test_hostile_connections.py.)

Each case names the row of the README's limits table it checks. Every request goes to an
org UUID of its own, so "nothing forwarded" means: the upstream never saw that UUID.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.config import write_config
from tests.support.net import free_port
from tests.support.process import MonitorProcess, assert_clean_exit, status_200
from tests.support.upstream import ORG_A, TOKEN_A, TOKEN_B, ThreadedSimulator

LINE_LIMIT = 8190  # aiohttp's: a request line, or one header line
HEADER_COUNT_LIMIT = 128  # aiohttp's
BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Daemon:
    port: int
    served: ThreadedSimulator
    monitor: MonitorProcess

    def forwarded(self, org_uuid: str) -> list[str]:
        """The paths the upstream received that name `org_uuid`."""
        requests = self.served.call(lambda: list(self.served.sim.requests))
        return [r.path + "?" + r.query_string for r in requests if org_uuid in r.path]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One `monitor run` for the cases of this module that leave no trace in it."""
    with ThreadedSimulator() as served:
        port = free_port()
        config = write_config(
            tmp_path_factory.mktemp("callers") / "config.toml",
            served.url,
            [{"uuid": ORG_A, "name": "acme", "token_env": "TOKEN_A"}],
            server={"port": port},
        )
        monitor = MonitorProcess(["run", "--config", str(config)], {"TOKEN_A": TOKEN_A})
        try:
            monitor.wait_until(f"http://127.0.0.1:{port}/healthz", status_200)
            yield Daemon(port, served, monitor)
            # Still running after every case, and stops cleanly (writing its coverage).
            code, _, log = monitor.stop()
            assert_clean_exit(code, log)
        finally:
            monitor.kill()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_type(self) -> str:
        return str(json.loads(self.body)["error"]["type"])


def exchange(port: int, request: bytes) -> Answer:
    """Send `request` as it is and read one answer: its head, then the body its
    Content-Length announces (none for HEAD). Not up to the close: after refusing a body,
    aiohttp keeps reading (and dropping) it for a while before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        length = 0 if request.startswith(b"HEAD ") else int(headers.get("content-length", 0))
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    return Answer(int(status_line.split(" ")[1]), headers, body)


def request(method: str, target: str, headers: list[str] | None = None, body: bytes = b"") -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {TOKEN_A}",
        "Connection: close",
        *(headers or []),
    ]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def fresh_org() -> str:
    return str(uuid.uuid4())


def test_a_header_past_the_line_limit_is_400_and_not_forwarded(daemon: Daemon) -> None:
    """Bound: proxied request head, 8190 bytes a header line (aiohttp's)."""
    org, fits = fresh_org(), fresh_org()
    long = exchange(
        daemon.port, request("GET", f"/api/organizations/{org}/usage", [f"X-Pad: {'p' * 9000}"])
    )
    assert long.status == 400, f"a 9008-byte header line: {long.status} {long.body[:200]!r}"
    assert daemon.forwarded(org) == []
    # Just under the bound, the same request goes through.
    pad = "p" * (LINE_LIMIT - len("X-Pad: ") - 10)
    within = exchange(
        daemon.port, request("GET", f"/api/organizations/{fits}/usage", [f"X-Pad: {pad}"])
    )
    assert within.status != 400, within
    assert len(daemon.forwarded(fits)) == 1


def test_more_headers_than_the_limit_is_400_and_not_forwarded(daemon: Daemon) -> None:
    """Bound: proxied request head, 128 headers (aiohttp's)."""
    org, fits = fresh_org(), fresh_org()

    def extra(total: int) -> list[str]:  # besides the 3 that `request` always sends
        return [f"X-H{i}: {i}" for i in range(total - 3)]

    over = exchange(
        daemon.port,
        request("GET", f"/api/organizations/{org}/usage", extra(HEADER_COUNT_LIMIT + 1)),
    )
    assert over.status == 400, f"{HEADER_COUNT_LIMIT + 1} headers: {over.status}"
    assert daemon.forwarded(org) == []
    within = exchange(
        daemon.port, request("GET", f"/api/organizations/{fits}/usage", extra(HEADER_COUNT_LIMIT))
    )
    assert within.status != 400, f"{HEADER_COUNT_LIMIT} headers: {within}"
    assert len(daemon.forwarded(fits)) == 1


def test_a_request_line_past_the_limit_is_400_and_one_within_is_forwarded_whole(
    daemon: Daemon,
) -> None:
    """Bound: proxied request head, 8190 bytes the request line. The query of a line within
    the bound reaches the upstream byte for byte."""
    org, fits = fresh_org(), fresh_org()
    over = exchange(daemon.port, request("GET", f"/api/organizations/{org}/usage?q={'x' * 9000}"))
    assert over.status == 400, f"a request line of ~9060 bytes: {over.status}"
    assert daemon.forwarded(org) == []
    path = f"/api/organizations/{fits}/projects/p1"
    query = "q=" + "y" * (LINE_LIMIT - len(f"GET {path}? HTTP/1.1") - 10)
    within = exchange(daemon.port, request("GET", f"{path}?{query}"))
    assert within.status != 400, within
    assert daemon.forwarded(fits) == [f"{path}?{query}"]


def chunked(size: int, piece: int = 4096) -> bytes:
    chunks = [b"%x\r\n%s\r\n" % (piece, b"x" * piece) for _ in range(size // piece)]
    return b"".join(chunks) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("how", "headers", "body"),
    [
        ("chunked", ["Transfer-Encoding: chunked"], chunked(BODY_LIMIT + 16 * 1024)),
        ("announced", [f"Content-Length: {10 * 1024 * 1024}"], b""),
    ],
)
def test_a_body_past_64_kib_is_413_and_not_forwarded(
    daemon: Daemon, how: str, headers: list[str], body: bytes
) -> None:
    """Bound: proxied request body, 64 KiB, announced or chunked."""
    org = fresh_org()
    raw = request("POST", f"/api/organizations/{org}/cowork/web_fetch", headers) + body
    answer = exchange(daemon.port, raw)
    assert answer.status == 413, f"{how} body of {len(body) or 10 * 2**20} bytes: {answer}"
    assert answer.error_type() == "request_too_large"
    assert daemon.forwarded(org) == []


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/organizations/{org}/usage", "GET"),
        ("/api/organizations/{org}/projects/p1", "GET"),
        ("/api/organizations/{org}/cowork/web_fetch", "POST"),
    ],
)
def test_head_and_options_on_proxy_routes_are_a_json_405_with_allow(
    daemon: Daemon, method: str, path: str, allowed: str
) -> None:
    """Each route takes one method: any other is refused locally, with `Allow`."""
    org = fresh_org()
    answer = exchange(daemon.port, request(method, path.format(org=org)))
    assert (answer.status, answer.headers.get("allow")) == (405, allowed), answer
    assert answer.headers["content-type"].startswith("application/json")
    if method != "HEAD":  # a HEAD answer has no body
        assert answer.error_type() == "method_not_allowed"
    assert daemon.forwarded(org) == []


@pytest.mark.parametrize(
    ("what", "body", "refusal"),
    [
        (
            "nested 30000 deep",
            b'{"url": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
            "body: JSON nested too deeply",
        ),
        ("not UTF-8", b'{"url": "https://example.com/\xff", "allowed_urls": []}', "not UTF-8"),
        # Valid JSON, if absurd: checked like any other body, and forwarded.
        (
            "an integer of 5000 digits",
            b'{"url": "https://example.com/", "allowed_urls": ["https://example.com/"], "n": 1'
            + b"0" * 5000
            + b"}",
            None,
        ),
    ],
)
def test_a_web_fetch_body_the_json_parser_balks_at_is_a_400_not_a_500(
    daemon: Daemon, what: str, body: bytes, refusal: str | None
) -> None:
    """Bound: proxied request body, 64 KiB. Within it, a body Python's JSON parser cannot
    take (deeper than about a thousand levels, not UTF-8) is a 400 `invalid_body` that
    says why, and is not forwarded."""
    org = fresh_org()
    path = f"/api/organizations/{org}/cowork/web_fetch"
    answer = exchange(daemon.port, request("POST", path, body=body))
    if refusal is None:
        assert answer.status < 500 and len(daemon.forwarded(org)) == 1, (what, answer)
        return
    assert answer.status == 400, f"{what}: {answer.status} {answer.body[:200]!r}"
    assert answer.error_type() == "invalid_body"
    assert refusal in json.loads(answer.body)["error"]["message"]
    assert daemon.forwarded(org) == []


@pytest.mark.parametrize(
    "header",
    [
        f"Cookie: sessionKey={TOKEN_B}; cf_clearance={'c' * 9000}",
        f"Authorization: Bearer {TOKEN_B}{'a' * 9000}",
    ],
)
def test_an_oversized_credential_header_never_reaches_the_log(daemon: Daemon, header: str) -> None:
    """Bound: proxied request head, 8190 bytes a header line. aiohttp's refusal quotes the
    first 100 bytes of the line; monitor logs one line naming the kind of error, without
    them."""
    org = fresh_org()
    answer = exchange(daemon.port, request("GET", f"/api/organizations/{org}/usage", [header]))
    assert answer.status == 400, answer
    assert daemon.forwarded(org) == []
    # aiohttp logs the refusal before it answers, so the log already holds it.
    assert TOKEN_B not in daemon.monitor.stderr, "an oversized credential header was logged"
    daemon.monitor.wait_for_log("refused a malformed request from 127.0.0.1: LineTooLong")
