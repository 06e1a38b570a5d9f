"""Plays the program that renews an OAuth token (Claude Code, a desktop app): issues a
short-lived token for an account every so often and writes it where monitor reads it."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from monitor.simulator.model import IssuedToken
from monitor.simulator.simulator import Simulator


def write_claude_credentials(path: Path, token: IssuedToken) -> None:
    """Write `token` the way Claude Code writes `~/.claude/.credentials.json` (its access
    token and expiry in epoch milliseconds under `claudeAiOauth`), replacing the file
    atomically: a new file, then a rename over the old one."""
    document = {
        "claudeAiOauth": {
            "accessToken": token.token,
            "expiresAt": int(token.expires_at * 1000),
            "scopes": ["user:inference", "user:profile"],
        }
    }
    fresh = path.with_name(f".{path.name}.new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    fresh.replace(path)


def renew_once(sim: Simulator, account_uuid: str, path: Path, lifetime: float) -> IssuedToken:
    token = sim.issue_token(account_uuid, lifetime)
    write_claude_credentials(path, token)
    return token


async def renew_forever(
    sim: Simulator, account_uuid: str, path: Path, *, every: float, lifetime: float
) -> None:
    """Renew the token in `path` every `every` seconds, each valid for `lifetime` (longer
    than `every`, so the file always holds a working token), until cancelled."""
    while True:
        await asyncio.sleep(every)
        renew_once(sim, account_uuid, path, lifetime)
