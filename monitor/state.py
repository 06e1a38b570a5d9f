"""What monitor knows about each organization: its target and the latest poll outcome.

The store is the one place the poller, the proxy's passive refresh, the `/metrics`
exposition, the status page and `/readyz` meet. It is plain in-memory state, touched only
from the event loop, so it needs no locks. Every snapshot it records, polled or relayed,
also feeds the org's `Trends`: each window's length and recent utilization.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.targets import OrgTarget
from monitor.trend import Trends
from monitor.usage import UsageSnapshot


class PollResult(StrEnum):
    """The `result` label of `claude_usage_polls_total`: one value per way a poll ends."""

    SUCCESS = "success"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    SERVER_ERROR = "server_error"
    INVALID_RESPONSE = "invalid_response"
    # Not sent: the credential's known expiry has passed and its source has nothing newer
    # (a request with a dead token only feeds the upstream's rate limiter).
    CREDENTIAL_EXPIRED = "credential_expired"


@dataclass
class OrgState:
    """One org's latest known state. `version` goes up on every change, so a renderer
    can keep what it made from this state until the version moves."""

    target: OrgTarget
    snapshot: UsageSnapshot | None = None  # the last good one, kept through failures
    last_result: PollResult | None = None  # None until the first poll ends
    last_error: str | None = None
    last_poll_end: float | None = None
    last_success: float | None = None
    duration: float | None = None
    next_poll: float | None = None
    results: dict[PollResult, int] = field(default_factory=lambda: dict.fromkeys(PollResult, 0))
    trends: Trends = field(default_factory=Trends)  # follows every recorded snapshot
    version: int = 0

    @property
    def up(self) -> bool:
        return self.last_result is PollResult.SUCCESS


class UsageStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._states: dict[str, OrgState] = {}
        self._clock = clock  # when a relayed answer arrived

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[OrgState]:
        return iter(list(self._states.values()))

    def __contains__(self, org_uuid: object) -> bool:
        return org_uuid in self._states

    def get(self, org_uuid: str) -> OrgState | None:
        return self._states.get(org_uuid)

    def set_targets(self, targets: Iterable[OrgTarget]) -> tuple[list[OrgTarget], list[OrgTarget]]:
        """Make the store hold exactly these targets; return (added, removed).

        A target that stays keeps its snapshot and counters even if its name or credential
        changed, so a config reload does not reset the history of untouched orgs.
        """
        wanted = {t.uuid: t for t in targets}
        removed = [s.target for u, s in self._states.items() if u not in wanted]
        for target in removed:
            del self._states[target.uuid]
        added: list[OrgTarget] = []
        for org_uuid, target in wanted.items():
            state = self._states.get(org_uuid)
            if state is None:
                self._states[org_uuid] = OrgState(target)
                added.append(target)
            elif state.target != target:
                state.target = target
                state.version += 1
        return added, removed

    def record_success(
        self, org_uuid: str, snapshot: UsageSnapshot, *, end: float, duration: float
    ) -> OrgState | None:
        state = self._states.get(org_uuid)
        if state is None:  # removed while its poll was in flight
            return None
        state.snapshot = snapshot
        state.trends.follow(snapshot, end)
        state.last_result = PollResult.SUCCESS
        state.last_error = None
        state.last_poll_end = end
        state.last_success = end
        state.duration = duration
        state.results[PollResult.SUCCESS] += 1
        state.version += 1
        return state

    def record_failure(
        self, org_uuid: str, result: PollResult, message: str, *, end: float, duration: float
    ) -> OrgState | None:
        state = self._states.get(org_uuid)
        if state is None:
            return None
        state.last_result = result
        state.last_error = message
        state.last_poll_end = end
        state.duration = duration
        state.results[result] += 1
        state.version += 1
        return state

    def record_relayed(self, org_uuid: str, snapshot: UsageSnapshot) -> bool:
        """A usage answer the proxy relayed for this org: fresher data, but not a poll, so
        the poll counters, health and last-success time stay as the poller left them."""
        state = self._states.get(org_uuid)
        if state is None:
            return False
        state.snapshot = snapshot
        state.trends.follow(snapshot, self._clock())
        state.version += 1
        return True

    def set_next_poll(self, org_uuid: str, when: float | None) -> None:
        state = self._states.get(org_uuid)
        if state is not None and state.next_poll != when:
            state.next_poll = when
            state.version += 1

    def pending(self) -> list[OrgTarget]:
        """Orgs whose first poll has not ended yet."""
        return [s.target for s in self._states.values() if s.last_result is None]
