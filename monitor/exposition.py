"""The usage families of `/metrics`, rendered by hand from the store.

prometheus_client formats each sample in Python at scrape time (about 8 us a sample,
seconds for 10,000 orgs). Here the orgs are rendered in blocks of `BLOCK_ORGS`, each
block kept as encoded text, one piece per family, until the state `version` of one of
its orgs (or of its credential) moves: a scrape re-renders only the blocks that changed,
and the body is the blocks' pieces in family order, never joined into one string. The
families are built from the snapshots (never `Gauge.set` on shared gauges), so an org or
window that disappears disappears from `/metrics`, and a `null` upstream value is simply
no sample.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable, Iterable, Sequence
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
    UP,
    USAGE_FAMILIES,
    UTILIZATION,
    WINDOW_LENGTH,
    WINDOWS_DROPPED,
)
from monitor.state import OrgState, PollResult, UsageStore
from monitor.trend import Trends
from monitor.usage import UsageSnapshot

# Orgs per block: the unit a scrape re-renders, and the work between two yields to the
# event loop (a few milliseconds), so a scrape of many orgs never holds up the proxy.
BLOCK_ORGS = 100
# Cached blocks checked between two yields when nothing has to be rendered.
CHECKS_PER_YIELD = 20

# The families an org has series in, in render order: all but the accounts' own.
ORG_FAMILIES = USAGE_FAMILIES[: -len(ACCOUNT_FAMILIES)]
# Where each family's lines go in a block's lists (the order of ORG_FAMILIES).
(
    _RATIO,
    _RESETS,
    _ENABLED,
    _LIMIT,
    _USED,
    _DROPPED,
    _LENGTH,
    _UP,
    _LAST_SUCCESS,
    _DURATION,
    _POLLS,
    _NEXT_POLL,
    _EXPIRES,
    _RELOADS,
) = range(len(ORG_FAMILIES))

Lines = list[list[str]]

# Every family's HELP and TYPE lines, encoded: text format (False), OpenMetrics (True).
_HEADERS = {
    om: tuple(family.header(om).encode() for family in USAGE_FAMILIES) for om in (False, True)
}
_POLL_SUFFIXES = tuple(f',result="{result.value}"}} ' for result in PollResult)
_poll_counts = operator.itemgetter(*PollResult)


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _snapshot_lines(out: Lines, labels: str, snapshot: UsageSnapshot, trends: Trends) -> None:
    """One org's lines of the `SNAPSHOT_FAMILIES`. Numbers are `repr(float(...))`, which
    round-trips; the store only holds finite ones (the parser drops the rest)."""
    ratio, resets, length = out[_RATIO], out[_RESETS], out[_LENGTH]
    for window in snapshot.windows:
        series = f'{{{labels},window="{_escape(window.name)}"}} '
        if window.utilization is not None:
            ratio.append(f"{UTILIZATION.name}{series}{float(window.utilization)!r}\n")
        if window.resets_at is not None:
            resets.append(f"{RESETS_AT.name}{series}{float(window.resets_at)!r}\n")
        seconds = trends.length(window.name)
        if seconds is not None:
            length.append(f"{WINDOW_LENGTH.name}{series}{float(seconds)!r}\n")
    series = "{" + labels + "} "
    extra = snapshot.extra
    if extra is not None:
        if extra.is_enabled is not None:
            value = "1.0" if extra.is_enabled else "0.0"
            out[_ENABLED].append(f"{EXTRA_ENABLED.name}{series}{value}\n")
        if extra.monthly_limit is not None:
            out[_LIMIT].append(f"{EXTRA_LIMIT.name}{series}{float(extra.monthly_limit)!r}\n")
        if extra.used_credits is not None:
            out[_USED].append(f"{EXTRA_USED.name}{series}{float(extra.used_credits)!r}\n")
    out[_DROPPED].append(f"{WINDOWS_DROPPED.name}{series}{len(snapshot.dropped)}\n")


def _health_lines(out: Lines, labels: str, state: OrgState) -> None:
    """One org's lines of the `HEALTH_FAMILIES`."""
    series = "{" + labels + "} "
    if state.last_result is not None:
        value = "1.0" if state.last_result is PollResult.SUCCESS else "0.0"
        out[_UP].append(f"{UP.name}{series}{value}\n")
    if state.last_success is not None:
        out[_LAST_SUCCESS].append(f"{LAST_SUCCESS.name}{series}{float(state.last_success)!r}\n")
    if state.duration is not None:
        out[_DURATION].append(f"{DURATION.name}{series}{float(state.duration)!r}\n")
    prefix = POLLS.name + "{" + labels
    polls = zip(_POLL_SUFFIXES, _poll_counts(state.results), strict=True)
    out[_POLLS].extend([f"{prefix}{suffix}{count}\n" for suffix, count in polls])
    if state.next_poll is not None:
        out[_NEXT_POLL].append(f"{NEXT_POLL.name}{series}{float(state.next_poll)!r}\n")


def _credential_lines(
    expires: list[str], reloads: list[str], labels: str, credential: LiveCredential, *, owned: bool
) -> None:
    """The lines of the `CREDENTIAL_FAMILIES`: its expiry where known, and its re-reads
    (only where this series `owned` the credential, so none is counted twice)."""
    if credential.expires_at is not None:
        expires.append(f"{CREDENTIAL_EXPIRES.name}{{{labels}}} {float(credential.expires_at)!r}\n")
    if owned and credential.follows:
        prefix = CREDENTIAL_RELOADS.name + "{" + labels
        reloads.extend(
            f'{prefix},result="{result}"}} {credential.reloads[result]}\n'
            for result in RELOAD_RESULTS
        )


def render_block(states: Iterable[OrgState]) -> tuple[bytes, ...]:
    """The lines of these orgs, one encoded piece per family of `ORG_FAMILIES` (empty
    where none of them has a series), each org in the given order."""
    out: Lines = [[] for _ in ORG_FAMILIES]
    expires, reloads = out[_EXPIRES], out[_RELOADS]
    for state in states:
        target = state.target
        labels = f'org="{_escape(target.name)}",org_uuid="{_escape(target.uuid)}"'
        if state.snapshot is not None:
            _snapshot_lines(out, labels, state.snapshot, state.trends)
        _health_lines(out, labels, state)
        # A discovered org's credential is its account's: counted under `account`, not here.
        owned = target.origin == "config"
        _credential_lines(expires, reloads, labels, target.credential, owned=owned)
    return tuple("".join(lines).encode() for lines in out)


class Account(Protocol):
    """What the exposition reads of a discovery account."""

    label: str
    credential: LiveCredential
    results: dict[PollResult, int]


def render_accounts(accounts: Iterable[Account]) -> tuple[bytes, ...]:
    """The `account` series: one encoded piece per family of `CREDENTIAL_FAMILIES`, then
    one for `DISCOVERIES`."""
    expires: list[str] = []
    reloads: list[str] = []
    discoveries: list[str] = []
    for account in accounts:
        labels = f'account="{_escape(account.label)}"'
        _credential_lines(expires, reloads, labels, account.credential, owned=True)
        prefix = DISCOVERIES.name + "{" + labels
        counts = _poll_counts(account.results)
        discoveries.extend(
            f"{prefix}{suffix}{count}\n"
            for suffix, count in zip(_POLL_SUFFIXES, counts, strict=True)
        )
    return tuple("".join(lines).encode() for lines in (expires, reloads, discoveries))


def _versions(states: Sequence[OrgState]) -> tuple[tuple[int, int], ...]:
    """What a block's text was rendered from: each org's state version and its
    credential's (a new target, or a new credential object, moves the state's)."""
    return tuple([(state.version, state.target.credential.version) for state in states])


@dataclass(frozen=True, slots=True)
class Block:
    """The text of up to `BLOCK_ORGS` consecutive orgs of the store."""

    states: tuple[OrgState, ...]
    versions: tuple[tuple[int, int], ...]
    pieces: tuple[bytes, ...]  # one per family of ORG_FAMILIES

    def holds(self, states: tuple[OrgState, ...], versions: tuple[tuple[int, int], ...]) -> bool:
        """Whether this text is still that of these orgs (whose `_versions` are
        `versions`): the same objects, in the same order, none changed since."""
        return (
            versions == self.versions
            and len(states) == len(self.states)
            and all(map(operator.is_, states, self.states))
        )


@dataclass(frozen=True)
class Rendered:
    """The usage families at one moment: for each family, the blocks' pieces then the
    accounts'. Two renders with the same `key` have the same text (a key moves whenever
    a block is rendered again or the accounts' text changes)."""

    key: int
    families: tuple[tuple[bytes, ...], ...]  # one per family of USAGE_FAMILIES

    def pieces(self, openmetrics: bool = False) -> list[bytes]:
        """The text in order, each family after its HELP and TYPE lines (only counters'
        headers differ between the formats; the caller ends OpenMetrics with `# EOF`)."""
        out: list[bytes] = []
        for header, pieces in zip(_HEADERS[openmetrics], self.families, strict=True):
            out.append(header)
            out.extend(piece for piece in pieces if piece)
        return out


class UsageExposition:
    """The usage families of every org in the store, and the series of the discovery
    accounts (label `account`), in the Prometheus text format or OpenMetrics."""

    def __init__(
        self, store: UsageStore, accounts: Callable[[], Iterable[Account]] = tuple
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._blocks: list[Block] = []
        self._account_pieces: tuple[bytes, ...] = ()
        self._rendered = Rendered(0, ())
        self._lock = asyncio.Lock()  # one render at a time: the others then reuse it

    async def render(self) -> Rendered:
        """The usage families now, re-rendering only the blocks whose orgs changed.
        Yields to the event loop after each block it renders, and every
        `CHECKS_PER_YIELD` blocks it only checks."""
        async with self._lock:
            changed = await self._update_blocks()
            accounts = render_accounts(self._accounts())
            if changed or accounts != self._account_pieces or not self._rendered.families:
                self._account_pieces = accounts
                self._rendered = Rendered(self._rendered.key + 1, self._families())
            return self._rendered

    async def render_chunks(self, openmetrics: bool = False) -> list[bytes]:
        """The exposition as encoded pieces, in order."""
        return (await self.render()).pieces(openmetrics)

    async def _update_blocks(self) -> bool:
        """Bring every block up to date with the store; whether any text changed."""
        states = list(self._store)
        blocks: list[Block] = []
        changed = False
        for index, start in enumerate(range(0, len(states), BLOCK_ORGS)):
            chunk = tuple(states[start : start + BLOCK_ORGS])
            versions = _versions(chunk)
            old = self._blocks[index] if index < len(self._blocks) else None
            if old is not None and old.holds(chunk, versions):
                blocks.append(old)
                if (index + 1) % CHECKS_PER_YIELD == 0:
                    await asyncio.sleep(0)
                continue
            blocks.append(Block(chunk, versions, render_block(chunk)))
            changed = True
            await asyncio.sleep(0)
        changed = changed or len(blocks) != len(self._blocks)
        self._blocks = blocks
        return changed

    def _families(self) -> tuple[tuple[bytes, ...], ...]:
        org_families = tuple(
            (*(block.pieces[index] for block in self._blocks), *self._account_piece(index))
            for index in range(len(ORG_FAMILIES))
        )
        return (*org_families, (self._account_pieces[-1],))

    def _account_piece(self, index: int) -> tuple[bytes, ...]:
        first = len(ORG_FAMILIES) - len(CREDENTIAL_FAMILIES)
        return (self._account_pieces[index - first],) if index >= first else ()
