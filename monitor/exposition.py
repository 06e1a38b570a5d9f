"""The usage families of `/metrics`, rendered by hand from the store.

prometheus_client formats each sample in Python at scrape time (about 8 us a sample,
seconds for 10,000 orgs). Here each org's lines are kept, rendered, until its state
`version` moves, so a scrape mostly joins strings. The families are built from the
snapshots (never `Gauge.set` on shared gauges), so an org or window that disappears
disappears from `/metrics`, and a `null` upstream value is simply no sample.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from monitor.credentials import RELOAD_RESULTS, LiveCredential
from monitor.families import (
    ACCOUNT_FAMILIES,
    CREDENTIAL_EXPIRES,
    CREDENTIAL_FAMILIES,
    CREDENTIAL_RELOADS,
    DISCOVERIES,
    DURATION,
    EXTRA_ENABLED,
    EXTRA_LIMIT,
    EXTRA_USED,
    LAST_SUCCESS,
    NEXT_POLL,
    POLLS,
    RESETS_AT,
    SNAPSHOT_FAMILIES,
    UP,
    USAGE_FAMILIES,
    UTILIZATION,
    WINDOW_LENGTH,
    WINDOWS_DROPPED,
)
from monitor.state import OrgState, PollResult, UsageStore
from monitor.usage import UsageSnapshot

# (window, length in seconds) of every window of a snapshot whose length is known.
Lengths = tuple[tuple[str, float], ...]

# Orgs rendered between two yields to the event loop, so a scrape of many orgs never
# holds up the proxy for long.
ORGS_PER_SLICE = 100
JOIN_SLICE = 2000


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    # repr() round-trips; the store only holds finite numbers (the parser drops the rest).
    return repr(float(value))


@dataclass(frozen=True)
class RenderedOrg:
    """One org's lines, one string per family of `USAGE_FAMILIES` (empty where it has no
    series), and the state `version` they were rendered from."""

    name: str
    uuid: str
    labels: str
    snapshot: UsageSnapshot | None
    lengths: Lengths
    version: tuple[int, int]  # the org state's and its credential's
    lines: tuple[str, ...]


_POLL_RESULT_SUFFIXES = tuple((result, f',result="{result.value}"}} ') for result in PollResult)


def window_lengths(state: OrgState) -> Lengths:
    """The known length of each window of the org's snapshot, in the snapshot's order."""
    if state.snapshot is None:
        return ()
    found = ((w.name, state.trends.length(w.name)) for w in state.snapshot.windows)
    return tuple((name, length) for name, length in found if length is not None)


def _snapshot_lines(
    labels: str, snapshot: UsageSnapshot | None, lengths: Lengths
) -> tuple[str, ...]:
    """The lines of the `SNAPSHOT_FAMILIES`."""
    if snapshot is None:
        return ("",) * len(SNAPSHOT_FAMILIES)
    ratio, resets = [], []
    for window in snapshot.windows:
        series = f'{{{labels},window="{_escape(window.name)}"}} '
        if window.utilization is not None:
            ratio.append(f"{UTILIZATION.name}{series}{_number(window.utilization)}\n")
        if window.resets_at is not None:
            resets.append(f"{RESETS_AT.name}{series}{_number(window.resets_at)}\n")
    enabled = limit = used = ""
    dropped = f"{WINDOWS_DROPPED.name}{{{labels}}} {len(snapshot.dropped)}\n"
    extra = snapshot.extra
    if extra is not None:
        if extra.is_enabled is not None:
            enabled = f"{EXTRA_ENABLED.name}{{{labels}}} {'1.0' if extra.is_enabled else '0.0'}\n"
        if extra.monthly_limit is not None:
            limit = f"{EXTRA_LIMIT.name}{{{labels}}} {_number(extra.monthly_limit)}\n"
        if extra.used_credits is not None:
            used = f"{EXTRA_USED.name}{{{labels}}} {_number(extra.used_credits)}\n"
    length = "".join(
        f'{WINDOW_LENGTH.name}{{{labels},window="{_escape(name)}"}} {_number(seconds)}\n'
        for name, seconds in lengths
    )
    return ("".join(ratio), "".join(resets), enabled, limit, used, dropped, length)


def _health_lines(labels: str, state: OrgState) -> tuple[str, ...]:
    """The lines of the `HEALTH_FAMILIES`."""
    series = "{" + labels + "} "
    up = last_success = duration = next_poll = ""
    if state.last_result is not None:
        up = f"{UP.name}{series}{'1.0' if state.up else '0.0'}\n"
    if state.last_success is not None:
        last_success = f"{LAST_SUCCESS.name}{series}{_number(state.last_success)}\n"
    if state.duration is not None:
        duration = f"{DURATION.name}{series}{_number(state.duration)}\n"
    prefix = f"{POLLS.name}{{{labels}"
    polls = "".join(
        f"{prefix}{suffix}{state.results[result]}\n" for result, suffix in _POLL_RESULT_SUFFIXES
    )
    if state.next_poll is not None:
        next_poll = f"{NEXT_POLL.name}{series}{_number(state.next_poll)}\n"
    return (up, last_success, duration, polls, next_poll)


def credential_lines(labels: str, credential: LiveCredential, *, reloads: bool) -> tuple[str, ...]:
    """The lines of the `CREDENTIAL_FAMILIES`: its expiry where known, and its re-reads
    (`reloads`: only where this series owns the credential, so none is counted twice)."""
    series = "{" + labels + "} "
    expires = ""
    if credential.expires_at is not None:
        expires = f"{CREDENTIAL_EXPIRES.name}{series}{_number(credential.expires_at)}\n"
    counts = ""
    if reloads and credential.follows:
        prefix = f"{CREDENTIAL_RELOADS.name}{{{labels}"
        counts = "".join(
            f'{prefix},result="{result}"}} {credential.reloads[result]}\n'
            for result in RELOAD_RESULTS
        )
    return (expires, counts)


def render_org_lines(state: OrgState, previous: RenderedOrg | None = None) -> RenderedOrg:
    """Every usage-family line of one org. What `previous` rendered is reused where it
    still holds: the labels while the name is the same, the payload's lines while the
    snapshot and the windows' known lengths are equal (most polls change nothing
    upstream)."""
    target, snapshot = state.target, state.snapshot
    lengths = window_lengths(state)
    if previous is not None and (previous.name, previous.uuid) == (target.name, target.uuid):
        labels = previous.labels
        same_usage = (
            previous.snapshot is snapshot or previous.snapshot == snapshot
        ) and previous.lengths == lengths
        payload = (
            previous.lines[: len(SNAPSHOT_FAMILIES)]
            if same_usage
            else _snapshot_lines(labels, snapshot, lengths)
        )
    else:
        labels = f'org="{_escape(target.name)}",org_uuid="{_escape(target.uuid)}"'
        payload = _snapshot_lines(labels, snapshot, lengths)
    # A discovered org's credential is its account's: counted under `account`, not here.
    owned = target.origin == "config"
    lines = (
        payload
        + _health_lines(labels, state)
        + credential_lines(labels, target.credential, reloads=owned)
        + ("",) * len(ACCOUNT_FAMILIES)  # an org has no series of its own there
    )
    version = (state.version, target.credential.version)
    return RenderedOrg(target.name, target.uuid, labels, snapshot, lengths, version, lines)


class Account(Protocol):
    """What the exposition reads of a discovery account."""

    label: str
    credential: LiveCredential
    results: dict[PollResult, int]


def account_lines(account: Account) -> tuple[str, ...]:
    """The `account` series of the `CREDENTIAL_FAMILIES` and `ACCOUNT_FAMILIES`."""
    labels = f'account="{_escape(account.label)}"'
    prefix = f"{DISCOVERIES.name}{{{labels}"
    discoveries = "".join(
        f"{prefix}{suffix}{account.results[result]}\n" for result, suffix in _POLL_RESULT_SUFFIXES
    )
    return (*credential_lines(labels, account.credential, reloads=True), discoveries)


class UsageExposition:
    """The usage families of every org in the store, and the series of the discovery
    accounts (label `account`), in the Prometheus text format or OpenMetrics."""

    def __init__(
        self, store: UsageStore, accounts: Callable[[], Iterable[Account]] = tuple
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._cache: dict[str, RenderedOrg] = {}

    def _lines_of(self, state: OrgState) -> tuple[str, ...]:
        rendered = self._cache.get(state.target.uuid)
        version = (state.version, state.target.credential.version)
        if rendered is None or rendered.version != version:
            rendered = render_org_lines(state, rendered)
            self._cache[state.target.uuid] = rendered
        return rendered.lines

    def _forget_removed(self, states: list[OrgState]) -> None:
        if len(self._cache) > len(states):
            present = {state.target.uuid for state in states}
            for org_uuid in [u for u in self._cache if u not in present]:
                del self._cache[org_uuid]

    async def render_chunks(self, openmetrics: bool = False) -> list[bytes]:
        """The exposition as encoded pieces, yielding to the event loop every
        ORGS_PER_SLICE orgs while gathering and every JOIN_SLICE lines while joining: no
        single step of a large scrape holds the loop for more than a few milliseconds.
        The sample lines are the same in both formats; only counters' headers differ
        (the caller ends an OpenMetrics exposition with `# EOF`)."""
        states = list(self._store)
        parts: list[list[str]] = [[] for _ in USAGE_FAMILIES]
        for index, state in enumerate(states, start=1):
            for family_lines, text in zip(parts, self._lines_of(state), strict=True):
                if text:
                    family_lines.append(text)
            if index % ORGS_PER_SLICE == 0:
                await asyncio.sleep(0)
        self._forget_removed(states)
        first = len(USAGE_FAMILIES) - len(CREDENTIAL_FAMILIES) - len(ACCOUNT_FAMILIES)
        for account in self._accounts():
            for offset, text in enumerate(account_lines(account)):
                if text:
                    parts[first + offset].append(text)
        chunks: list[bytes] = []
        for family, family_lines in zip(USAGE_FAMILIES, parts, strict=True):
            chunks.append(family.header(openmetrics).encode())
            for start in range(0, len(family_lines), JOIN_SLICE):
                chunks.append("".join(family_lines[start : start + JOIN_SLICE]).encode())
                await asyncio.sleep(0)
        return chunks
