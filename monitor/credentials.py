"""Credentials as they are now: each org's or account's secret, following its source.

Real bearer tokens are OAuth access tokens that live for hours and are renewed by another
program (Claude Code rewrites its credentials file; a keychain holds the desktop app's).
So a `LiveCredential` checks its file with a cheap stat before each use and re-reads it
when it changed, re-runs its command when the cached answer is stale, and does either
once more when the upstream rejects it. It never writes a credential and never spends a
refresh token: that would sign the owner's own Claude Code or desktop app out.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

from monitor.failure_log import FailureLog
from monitor.secret_sources import (
    CredentialKind,
    FileStamp,
    SecretError,
    SecretReading,
    SecretSpec,
    read_file,
    run_command,
)

log = logging.getLogger("monitor.credentials")

ReloadResult = Literal["changed", "unchanged", "error"]
RELOAD_RESULTS: tuple[ReloadResult, ...] = ("changed", "unchanged", "error")
# A command's answer with an expiry is used until this long before it (at most a quarter
# of its life), so a poll never goes out with a token about to lapse.
EXPIRY_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Credential:
    """A secret and how to present it; its value never shows in repr or str."""

    kind: CredentialKind
    secret: SecretStr = field(repr=False)
    source: str  # where it came from, e.g. "$CLAUDE_TOKEN" or "file /run/secrets/acme"

    def headers(self) -> dict[str, str]:
        value = self.secret.get_secret_value()
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {value}"}
        return {"Cookie": f"sessionKey={value}"}

    @functools.cached_property  # a credential never changes; `current` reuses one per secret
    def fingerprint(self) -> str:
        """A stable id of the secret, for grouping orgs that share one (never exported)."""
        digest = hashlib.sha256(self.secret.get_secret_value().encode()).hexdigest()
        return f"{self.kind}:{digest[:16]}"

    def masked(self) -> str:
        # Not even a prefix: tokens share well-known prefixes, and the length and source
        # are what an operator needs to tell two credentials apart.
        length = len(self.secret.get_secret_value())
        return f"{self.kind} ******** ({length} chars, from {self.source})"

    def __str__(self) -> str:
        return f"{self.kind} credential from {self.source}"


class LiveCredential:
    """One org's or account's credential, kept current from its source."""

    def __init__(
        self,
        spec: SecretSpec,
        first: SecretReading,
        *,
        label: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.label = label  # "org=acme", "account=team": what log lines name
        self._clock = clock
        self._reading = first
        self._read_at = clock()
        self._failures = FailureLog(log, "credential reload", clock)
        self.reloads: dict[ReloadResult, int] = dict.fromkeys(RELOAD_RESULTS, 0)
        self.version = 0  # goes up whenever the secret, its expiry or a counter moves
        self._current: tuple[SecretReading, Credential] | None = None

    @property
    def current(self) -> Credential:
        """The credential as its source has it now: one object per reading, so what is
        derived from it (the fingerprint, asked at every poll and by the passive refresh
        for every org) is computed once per secret, not at each use."""
        cached = self._current
        if cached is None or cached[0] is not self._reading:
            credential = Credential(self.spec.presented, self._reading.value, self.spec.describe())
            cached = self._current = (self._reading, credential)
        return cached[1]

    @property
    def expires_at(self) -> float | None:
        return self._reading.expires_at

    @property
    def follows(self) -> bool:
        """Whether the source can change while monitor runs (files and commands)."""
        return self.spec.source != "env"

    def expired(self) -> bool:
        """Known to have expired, and the source has brought nothing newer since."""
        return self.expires_at is not None and self.expires_at <= self._clock()

    async def refresh(self) -> None:
        """Before a use: re-read a file whose stamp changed, re-run a command whose
        answer is stale. A failure keeps the last good secret (logged and counted)."""
        path = self.spec.path
        if path is not None:  # a file
            try:
                stamp = FileStamp.of(path)
            except OSError as exc:
                reason = "does not exist" if isinstance(exc, FileNotFoundError) else exc.strerror
                self._failed(SecretError(self.spec.field, f"file {path} {reason}"))
                return
            if stamp != self._reading.stamp:
                await self._reload()
        elif self.spec.source == "command" and self._stale():
            await self._reload()

    async def reread(self) -> bool:
        """The upstream rejected the secret: read the source once more (files, commands).
        True if that brought a different secret, worth an immediate retry."""
        if not self.follows:
            return False
        return await self._reload()

    def rotate(self, value: str) -> None:
        """The upstream set a new `sessionKey` cookie: use it from now on (memory only).
        A later re-read that brings a different key from the source wins over it."""
        if self.spec.presented != "session" or not value.strip():
            return
        if value.strip() == self._reading.value.get_secret_value():
            return
        self._reading = SecretReading(
            SecretStr(value.strip()), self._reading.expires_at, self._reading.stamp
        )
        self._count("changed")
        log.info("credential of %s: the upstream rotated its session key", self.label)

    def _stale(self) -> bool:
        now = self._clock()
        expires_at = self.expires_at
        if expires_at is None:
            return now - self._read_at >= self.spec.ttl
        margin = min(EXPIRY_MARGIN_SECONDS, max(0.0, expires_at - self._read_at) / 4)
        return now >= expires_at - margin

    async def _reload(self) -> bool:
        try:
            reading = await self._read()
        except SecretError as exc:
            self._failed(exc)
            return False
        self._read_at = self._clock()
        self._failures.succeeded(self.spec.field, self.label)
        old = self._reading
        self._reading = reading
        if reading.value.get_secret_value() != old.value.get_secret_value():
            self._count("changed")
            return True
        if reading.expires_at != old.expires_at:
            self.version += 1
        self._count("unchanged")
        return False

    async def _read(self) -> SecretReading:
        if self.spec.source == "file":
            return read_file(self.spec)
        known = [self._reading.value.get_secret_value()]
        return await run_command(self.spec, known)

    def _failed(self, exc: SecretError) -> None:
        self._count("error")
        message = f"{exc.message}; keeping the last good secret"
        self._failures.failed(self.spec.field, self.label, "error", message)

    def _count(self, result: ReloadResult) -> None:
        self.reloads[result] += 1
        self.version += 1
