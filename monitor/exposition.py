"""The usage families of `/metrics`, rendered by hand from the store.

prometheus_client formats each sample in Python at scrape time (about 8 us a sample,
seconds for 10,000 orgs). Here each org's lines are kept, rendered, until its state
`version` moves, so a scrape mostly joins strings. The families are built from the
snapshots (never `Gauge.set` on shared gauges), so an org or window that disappears
disappears from `/metrics`, and a `null` upstream value is simply no sample.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from monitor.state import OrgState, PollResult, UsageStore
from monitor.usage import UsageSnapshot

CACHED = "Cached from the last poll of the usage endpoint."
# Orgs rendered between two yields to the event loop, so a scrape of many orgs never
# holds up the proxy for long.
ORGS_PER_SLICE = 100
JOIN_SLICE = 2000


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    help: str

    def header(self) -> str:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.type}\n"


UTILIZATION = Family(
    "claude_usage_utilization_ratio",
    "gauge",
    f"Utilization of the usage window, 0-1 (can exceed 1). {CACHED}",
)
RESETS_AT = Family(
    "claude_usage_resets_at_timestamp_seconds",
    "gauge",
    f"When the usage window resets, Unix seconds. {CACHED}",
)
EXTRA_ENABLED = Family(
    "claude_usage_extra_enabled", "gauge", f"1 if extra usage is enabled, else 0. {CACHED}"
)
EXTRA_LIMIT = Family(
    "claude_usage_extra_monthly_limit_credits",
    "gauge",
    f"Extra-usage monthly limit, in the upstream's credits (minor units). {CACHED}",
)
EXTRA_USED = Family(
    "claude_usage_extra_used_credits",
    "gauge",
    f"Extra-usage credits used this month (minor units). {CACHED}",
)
UP = Family("claude_usage_up", "gauge", "1 if the last poll of the usage endpoint succeeded.")
LAST_SUCCESS = Family(
    "claude_usage_last_success_timestamp_seconds",
    "gauge",
    "End of the last successful poll, Unix seconds.",
)
DURATION = Family(
    "claude_usage_poll_duration_seconds", "gauge", "How long the last poll took, in seconds."
)
POLLS = Family("claude_usage_polls_total", "counter", "Polls of the usage endpoint by result.")
NEXT_POLL = Family(
    "claude_usage_next_poll_timestamp_seconds",
    "gauge",
    "When the scheduler will poll this org next, Unix seconds.",
)
# The families rendered from the upstream's payload, then those about the polls.
SNAPSHOT_FAMILIES = (UTILIZATION, RESETS_AT, EXTRA_ENABLED, EXTRA_LIMIT, EXTRA_USED)
HEALTH_FAMILIES = (UP, LAST_SUCCESS, DURATION, POLLS, NEXT_POLL)
USAGE_FAMILIES = SNAPSHOT_FAMILIES + HEALTH_FAMILIES


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
    version: int
    lines: tuple[str, ...]


_POLL_RESULT_SUFFIXES = tuple((result, f',result="{result.value}"}} ') for result in PollResult)


def _snapshot_lines(labels: str, snapshot: UsageSnapshot | None) -> tuple[str, ...]:
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
    extra = snapshot.extra
    if extra is not None:
        if extra.is_enabled is not None:
            enabled = f"{EXTRA_ENABLED.name}{{{labels}}} {'1.0' if extra.is_enabled else '0.0'}\n"
        if extra.monthly_limit is not None:
            limit = f"{EXTRA_LIMIT.name}{{{labels}}} {_number(extra.monthly_limit)}\n"
        if extra.used_credits is not None:
            used = f"{EXTRA_USED.name}{{{labels}}} {_number(extra.used_credits)}\n"
    return ("".join(ratio), "".join(resets), enabled, limit, used)


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


def render_org_lines(state: OrgState, previous: RenderedOrg | None = None) -> RenderedOrg:
    """Every usage-family line of one org. What `previous` rendered is reused where it
    still holds: the labels while the name is the same, the payload's lines while the
    snapshot is equal (most polls change nothing upstream)."""
    target, snapshot = state.target, state.snapshot
    if previous is not None and (previous.name, previous.uuid) == (target.name, target.uuid):
        labels = previous.labels
        same_usage = previous.snapshot is snapshot or previous.snapshot == snapshot
        payload = (
            previous.lines[: len(SNAPSHOT_FAMILIES)]
            if same_usage
            else _snapshot_lines(labels, snapshot)
        )
    else:
        labels = f'org="{_escape(target.name)}",org_uuid="{_escape(target.uuid)}"'
        payload = _snapshot_lines(labels, snapshot)
    lines = payload + _health_lines(labels, state)
    return RenderedOrg(target.name, target.uuid, labels, snapshot, state.version, lines)


class UsageExposition:
    """The usage families of every org in the store, in the Prometheus text format."""

    def __init__(self, store: UsageStore) -> None:
        self._store = store
        self._cache: dict[str, RenderedOrg] = {}

    def _lines_of(self, state: OrgState) -> tuple[str, ...]:
        rendered = self._cache.get(state.target.uuid)
        if rendered is None or rendered.version != state.version:
            rendered = render_org_lines(state, rendered)
            self._cache[state.target.uuid] = rendered
        return rendered.lines

    def _forget_removed(self, states: list[OrgState]) -> None:
        if len(self._cache) > len(states):
            present = {state.target.uuid for state in states}
            for org_uuid in [u for u in self._cache if u not in present]:
                del self._cache[org_uuid]

    async def render_chunks(self) -> list[bytes]:
        """The exposition as encoded pieces, yielding to the event loop every
        ORGS_PER_SLICE orgs while gathering and every JOIN_SLICE lines while joining: no
        single step of a large scrape holds the loop for more than a few milliseconds."""
        states = list(self._store)
        parts: list[list[str]] = [[] for _ in USAGE_FAMILIES]
        for index, state in enumerate(states, start=1):
            for family_lines, text in zip(parts, self._lines_of(state), strict=True):
                if text:
                    family_lines.append(text)
            if index % ORGS_PER_SLICE == 0:
                await asyncio.sleep(0)
        self._forget_removed(states)
        chunks: list[bytes] = []
        for family, lines in zip(USAGE_FAMILIES, parts, strict=True):
            chunks.append(family.header().encode())
            for start in range(0, len(lines), JOIN_SLICE):
                chunks.append("".join(lines[start : start + JOIN_SLICE]).encode())
                await asyncio.sleep(0)
        return chunks
