"""The usage families as prometheus_client itself renders them, from the same store.

monitor renders these families by hand for speed (`monitor.exposition`); this collector
says, independently, what they must contain, with prometheus_client's own metric family
classes. A property test compares the two, sample for sample, in both formats: that
comparison is what keeps the fast path honest. A new per-org family goes in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import families as f
from monitor.credentials import RELOAD_RESULTS, LiveCredential
from monitor.exposition import Account
from monitor.state import OrgState, PollResult, UsageStore

ORG = ["org", "org_uuid"]


@dataclass
class FakeAccount:
    """A discovery account as the exposition reads it."""

    label: str
    credential: LiveCredential
    results: dict[PollResult, int] = field(default_factory=lambda: dict.fromkeys(PollResult, 0))


def _gauge(family: f.Family, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(family.name, family.help, labels=labels)


def _counter(family: f.Family, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(family.name.removesuffix("_total"), family.help, labels=labels)


class ReferenceCollector(Collector):
    def __init__(self, store: UsageStore, accounts: Iterable[Account] = ()) -> None:
        self._store = store
        self._accounts = list(accounts)

    def collect(self) -> Iterator[Metric]:
        window = [*ORG, "window"]
        payload = {
            name: _gauge(family, window if family in WINDOWED else ORG)
            for name, family in PAYLOAD.items()
        }
        health = {name: _gauge(family, ORG) for name, family in HEALTH.items()}
        polls = _counter(f.POLLS, [*ORG, "result"])
        expires = _gauge(f.CREDENTIAL_EXPIRES, ORG)
        reloads = _counter(f.CREDENTIAL_RELOADS, [*ORG, "result"])
        account_expires = _gauge(f.CREDENTIAL_EXPIRES, ["account"])
        account_reloads = _counter(f.CREDENTIAL_RELOADS, ["account", "result"])
        discoveries = _counter(f.DISCOVERIES, ["account", "result"])
        for state in self._store:
            org = [state.target.name, state.target.uuid]
            _payload(payload, org, state)
            _health(health, polls, org, state)
            _credential(expires, reloads, org, state.target.credential, state.target.origin)
        for account in self._accounts:
            label = [account.label]
            _credential(account_expires, account_reloads, label, account.credential, "config")
            for result in PollResult:
                discoveries.add_metric([account.label, result.value], account.results[result])
        yield from payload.values()
        yield from (health["up"], health["success"], health["duration"], polls, health["next"])
        yield from (_merged(expires, account_expires), _merged(reloads, account_reloads))
        yield discoveries


PAYLOAD = {
    "utilization": f.UTILIZATION,
    "resets": f.RESETS_AT,
    "enabled": f.EXTRA_ENABLED,
    "limit": f.EXTRA_LIMIT,
    "used": f.EXTRA_USED,
    "dropped": f.WINDOWS_DROPPED,
    "length": f.WINDOW_LENGTH,
}
WINDOWED = (f.UTILIZATION, f.RESETS_AT, f.WINDOW_LENGTH)
HEALTH = {"up": f.UP, "success": f.LAST_SUCCESS, "duration": f.DURATION, "next": f.NEXT_POLL}


def _payload(families: dict[str, GaugeMetricFamily], org: list[str], state: OrgState) -> None:
    snapshot = state.snapshot
    if snapshot is None:
        return
    for w in snapshot.windows:
        if w.utilization is not None:
            families["utilization"].add_metric([*org, w.name], w.utilization)
        if w.resets_at is not None:
            families["resets"].add_metric([*org, w.name], w.resets_at)
        length = state.trends.length(w.name)
        if length is not None:
            families["length"].add_metric([*org, w.name], length)
    extra = snapshot.extra
    if extra is not None:
        for name, number in (
            ("enabled", None if extra.is_enabled is None else float(extra.is_enabled)),
            ("limit", extra.monthly_limit),
            ("used", extra.used_credits),
        ):
            if number is not None:
                families[name].add_metric(org, number)
    families["dropped"].add_metric(org, len(snapshot.dropped))


def _health(
    families: dict[str, GaugeMetricFamily],
    polls: CounterMetricFamily,
    org: list[str],
    state: OrgState,
) -> None:
    if state.last_result is not None:
        families["up"].add_metric(org, 1.0 if state.up else 0.0)
    for name, number in (
        ("success", state.last_success),
        ("duration", state.duration),
        ("next", state.next_poll),
    ):
        if number is not None:
            families[name].add_metric(org, number)
    for result in PollResult:
        polls.add_metric([*org, result.value], state.results[result])


def _credential(
    expires: GaugeMetricFamily,
    reloads: CounterMetricFamily,
    labels: list[str],
    credential: LiveCredential,
    origin: str,
) -> None:
    if credential.expires_at is not None:
        expires.add_metric(labels, credential.expires_at)
    if credential.follows and origin == "config":
        for result in RELOAD_RESULTS:
            reloads.add_metric([*labels, result], credential.reloads[result])


def _merged(orgs: Metric, accounts: Metric) -> Metric:
    """One family for the org series and the account series (two label sets, one name)."""
    orgs.samples.extend(accounts.samples)
    return orgs
