"""Passive refresh: a usage answer the proxy relays for a polled org also updates its
snapshot. `UsageTee` keeps a bounded copy of the relayed bytes; `decode_usage` turns them,
as they went over the wire, into a snapshot; `orgs_polling` finds the orgs an OAuth usage
answer belongs to."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable

from monitor.body_copy import BodyCopy
from monitor.state import OrgState
from monitor.upstream import MAX_BODY_BYTES
from monitor.usage import MAX_WINDOWS, UsageSnapshot, json_int, parse_usage


def decode_usage(
    body: bytes, content_encoding: str | None, max_windows: int = MAX_WINDOWS
) -> UsageSnapshot:
    """A relayed usage body (as it went over the wire) -> snapshot; ValueError if it is not a
    usage JSON object, or is in an encoding this does not undo (br, zstd)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        data = _inflate(body, 16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        try:
            data = _inflate(body, zlib.MAX_WBITS)
        except ValueError:
            data = _inflate(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    elif encoding == "identity":
        data = body
    else:
        raise ValueError(f"Content-Encoding {encoding!r} is not decoded for passive refresh")
    try:
        payload = json.loads(data, parse_int=json_int)
    except RecursionError:
        raise ValueError("usage body is JSON nested too deeply") from None
    if not isinstance(payload, dict):
        raise ValueError(f"usage body is a JSON {type(payload).__name__}, not an object")
    return parse_usage(payload, max_windows)


def orgs_polling(states: Iterable[OrgState], usage_url: str, fingerprint: str) -> list[str]:
    """The orgs that poll exactly `usage_url` with the credential of this fingerprint (an
    `/api/oauth/usage` answer is the usage of whoever's token asked, not of an org in the
    path). Fingerprints are hashes: no token is compared as text here."""
    return [
        state.target.uuid
        for state in states
        if state.target.usage_url == usage_url
        and state.target.credential.current.fingerprint == fingerprint
    ]


def _inflate(body: bytes, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, MAX_BODY_BYTES)
    except zlib.error as exc:
        raise ValueError(f"cannot decompress: {exc}") from None
    if inflater.unconsumed_tail:
        raise ValueError("decompressed body is over the 1 MiB limit")
    return data


class UsageTee(BodyCopy):
    """Keeps a copy of relayed chunks up to MAX_BODY_BYTES; past that it gives up."""

    def __init__(self, limit: int = MAX_BODY_BYTES) -> None:
        super().__init__(limit)

    def body(self) -> bytes:
        if self.overflowed:
            raise ValueError(f"usage body is over the {self._limit} byte limit")
        return self.joined()
