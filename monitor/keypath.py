"""Where a problem is, written the way a user reads it: `orgs[1].uuid`, `body.url`."""

from __future__ import annotations

from collections.abc import Iterable


def key_path(loc: Iterable[int | str]) -> str:
    """A pydantic error location as a dotted key path with list indexes in brackets."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
