"""Ways the simulated upstream can misbehave, as data.

A `Fault` only describes the failure; `app.py` acts it out on the wire. Keeping it a
frozen, validated value lets the same object come from Python or from the JSON control
route, and lets tests of the validation be plain calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# The page Cloudflare serves instead of JSON when it wants a browser to prove itself.
CLOUDFLARE_HTML = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head>'
    "<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>\n"
)

GLOBAL = "*"


class FaultError(ValueError):
    """A fault description that cannot be acted out; the message says which field."""


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) the normal answer.

    - `status` (+ optional `body`, `retry_after`, `content_type`): answer that status.
      Without `body`, an error envelope fitting the status is sent.
    - `cloudflare`: 403 with the HTML challenge page.
    - `delay`: seconds to wait before anything else happens (alone: then answer normally).
    - `drop`: close the connection without a byte of answer.
    - `truncate`: promise more bytes in Content-Length than are sent, then close.
      Combined with `status`, the truncated body is that status's body.
    - `times`: only the next N requests are affected; `None` until cleared.
    """

    status: int | None = None
    body: str | None = None
    retry_after: str | None = None
    content_type: str = "application/json"
    cloudflare: bool = False
    delay: float = 0.0
    drop: bool = False
    truncate: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 599:
            raise FaultError(f"status: must be an HTTP status 100..599, got {self.status}")
        if not math.isfinite(self.delay) or self.delay < 0:
            raise FaultError(f"delay: must be a finite number of seconds >= 0, got {self.delay}")
        if self.times is not None and self.times < 1:
            raise FaultError(f"times: must be >= 1 or null, got {self.times}")
        if self.body is not None and self.status is None:
            raise FaultError("body: needs a status to go with it")
        if self.retry_after is not None and self.status is None and not self.cloudflare:
            raise FaultError("retry_after: needs a status to go with it")
        if self.cloudflare and self.status is not None:
            raise FaultError("cloudflare: always answers 403, do not combine it with status")
        if self.drop and (self.status is not None or self.cloudflare or self.truncate):
            raise FaultError("drop: sends nothing, do not combine it with an answer")
        if not (
            self.status is not None
            or self.cloudflare
            or self.drop
            or self.truncate
            or self.delay > 0
        ):
            raise FaultError("fault does nothing: set status, cloudflare, delay, drop or truncate")

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """Build from a decoded JSON body, refusing unknown keys and wrong types."""
        if not isinstance(data, dict):
            raise FaultError("fault must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultError(f"{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            kwargs[name] = _check_type(name, value)
        return cls(**kwargs)

    def to_json(self) -> dict[str, str | int | float | bool | None]:
        return {
            "status": self.status,
            "body": self.body,
            "retry_after": self.retry_after,
            "content_type": self.content_type,
            "cloudflare": self.cloudflare,
            "delay": self.delay,
            "drop": self.drop,
            "truncate": self.truncate,
            "times": self.times,
        }


_INT_FIELDS = frozenset({"status", "times"})
_STR_FIELDS = frozenset({"body", "retry_after"})
_BOOL_FIELDS = frozenset({"cloudflare", "drop", "truncate"})


def _check_type(name: str, value: object) -> object:
    # bool is an int subclass in Python, so it is ruled out explicitly for numbers.
    if name in _INT_FIELDS:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise FaultError(f"{name}: must be an integer or null")
    if name in _STR_FIELDS:
        if value is None or isinstance(value, str):
            return value
        raise FaultError(f"{name}: must be a string or null")
    if name in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        raise FaultError(f"{name}: must be true or false")
    if name == "delay":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise FaultError("delay: must be a number of seconds")
    if name == "content_type":
        if isinstance(value, str) and value:
            return value
        raise FaultError("content_type: must be a non-empty string")
    raise FaultError(f"{name}: unknown field")


@dataclass
class ArmedFault:
    """A fault in place, with how many more requests it may still hit."""

    fault: Fault
    remaining: int | None


class FaultTable:
    """Faults by org uuid (or `*` for every route), consumed one request at a time."""

    def __init__(self) -> None:
        self._armed: dict[str, ArmedFault] = {}

    def set(self, key: str, fault: Fault) -> None:
        self._armed[key] = ArmedFault(fault, fault.times)

    def clear(self, key: str) -> bool:
        return self._armed.pop(key, None) is not None

    def snapshot(self) -> Mapping[str, ArmedFault]:
        return dict(self._armed)

    def take(self, org_uuid: str | None) -> Fault | None:
        """The fault to act out for one request, counting it against `times`.

        The global fault wins over the org's, since it stands for trouble in front of
        every org (a Cloudflare wall, a dead network).
        """
        for key in (GLOBAL, org_uuid):
            if key is None or key not in self._armed:
                continue
            armed = self._armed[key]
            if armed.remaining is not None:
                armed.remaining -= 1
                if armed.remaining <= 0:
                    del self._armed[key]
            return armed.fault
        return None
