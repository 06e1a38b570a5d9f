"""Sending an upstream answer back to the proxy's caller, byte for byte.

A small answer of known length (a usage read is a few hundred bytes) is read whole, then
sent as one `web.Response`: status line, headers and body leave in one write. Anything
else (chunked, or larger than `WHOLE_ANSWER_BYTES`) is streamed as it comes, so memory
stays flat whatever the size. Either way, once the status line has gone out a failure can
no longer become a JSON error: the caller's connection is cut, so it sees a truncated
answer rather than a complete-looking wrong one. A small answer that fails midway is sent
the same way (status line, headers, the bytes that came, then the cut), so the caller
cannot tell the two paths apart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from monitor.proxy_errors import where
from monitor.proxy_routes import Outcome

log = logging.getLogger("monitor.proxy")

# Answers up to this size, with a Content-Length, are read whole before they are sent.
WHOLE_ANSWER_BYTES = 64 * 1024


class Copy(Protocol):
    """Where a relayed answer's bytes are copied as they pass (the usage cache's capture,
    the passive refresh's tee)."""

    def feed(self, chunk: bytes) -> None: ...


async def relay_answer(
    name: str,
    request: web.Request,
    answer: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    outcome: Outcome,
    copies: Sequence[Copy] = (),
) -> tuple[web.StreamResponse, bool]:
    """Send `answer` to the caller with `headers`; also feed its bytes to `copies`. True
    with the response when the whole answer reached the caller."""
    length = answer.content_length
    if length is None or length > WHOLE_ANSWER_BYTES or "Transfer-Encoding" in answer.headers:
        return await _stream(name, request, answer, headers, outcome, copies)
    chunks: list[bytes] = []
    size = 0
    while size < length:
        try:
            chunk = await answer.content.readany()
        except (TimeoutError, aiohttp.ClientError) as exc:
            response = await _start(request, answer, headers, outcome)
            if chunks and not await _write(name, response, b"".join(chunks)):
                return response, False
            return _cut(name, request, answer, exc, response), False
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    response = web.Response(status=answer.status, reason=answer.reason, body=body, headers=headers)
    await response.prepare(request)
    outcome.code = answer.status
    try:
        await response.write_eof()
    except ConnectionError:
        log.debug("caller of %s went away mid-answer", name)
        return response, False
    for copy in copies:
        copy.feed(body)
    return response, True


async def _stream(
    name: str,
    request: web.Request,
    answer: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    outcome: Outcome,
    copies: Sequence[Copy],
) -> tuple[web.StreamResponse, bool]:
    response = await _start(request, answer, headers, outcome)
    while True:
        try:
            chunk = await answer.content.readany()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return _cut(name, request, answer, exc, response), False
        if not chunk:
            break
        if not await _write(name, response, chunk):
            return response, False
        for copy in copies:
            copy.feed(chunk)
    await response.write_eof()
    return response, True


async def _start(
    request: web.Request,
    answer: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    outcome: Outcome,
) -> web.StreamResponse:
    """The status line and headers, sent now."""
    response = web.StreamResponse(status=answer.status, reason=answer.reason, headers=headers)
    await response.prepare(request)
    outcome.code = answer.status
    return response


async def _write(name: str, response: web.StreamResponse, chunk: bytes) -> bool:
    try:
        await response.write(chunk)
    except ConnectionError:
        log.debug("caller of %s went away mid-answer", name)
        return False
    return True


def _cut(
    name: str,
    request: web.Request,
    answer: aiohttp.ClientResponse,
    exc: BaseException,
    response: web.StreamResponse,
) -> web.StreamResponse:
    log.warning(
        "upstream %s failed after %s %d started streaming (%s); aborting the caller's connection",
        where(answer.url),
        name,
        answer.status,
        type(exc).__name__,
    )
    if request.transport is not None:
        request.transport.abort()
    return response
