"""The usage families as prometheus_client itself renders them, from the same store.

monitor renders these families by hand for speed (`monitor.exposition`); this collector
says, independently, what they must contain, with prometheus_client's own metric family
classes. A property test compares the two, sample for sample, in both formats: that
comparison is what keeps the fast path honest. A new per-org family goes in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import families as f
from monitor.credentials import RELOAD_RESULTS, LiveCredential
from monitor.exposition import Account
from monitor.state import PollResult, UsageStore

ORG = ["org", "org_uuid"]


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
        utilization, resets = _gauge(f.UTILIZATION, window), _gauge(f.RESETS_AT, window)
        enabled, limit = _gauge(f.EXTRA_ENABLED, ORG), _gauge(f.EXTRA_LIMIT, ORG)
        used, dropped = _gauge(f.EXTRA_USED, ORG), _gauge(f.WINDOWS_DROPPED, ORG)
        up, success = _gauge(f.UP, ORG), _gauge(f.LAST_SUCCESS, ORG)
        duration, next_poll = _gauge(f.DURATION, ORG), _gauge(f.NEXT_POLL, ORG)
        polls = _counter(f.POLLS, [*ORG, "result"])
        expires = _gauge(f.CREDENTIAL_EXPIRES, ORG)
        reloads = _counter(f.CREDENTIAL_RELOADS, [*ORG, "result"])
        account_expires = _gauge(f.CREDENTIAL_EXPIRES, ["account"])
        account_reloads = _counter(f.CREDENTIAL_RELOADS, ["account", "result"])
        discoveries = _counter(f.DISCOVERIES, ["account", "result"])
        for state in self._store:
            org = [state.target.name, state.target.uuid]
            snapshot = state.snapshot
            if snapshot is not None:
                for w in snapshot.windows:
                    if w.utilization is not None:
                        utilization.add_metric([*org, w.name], w.utilization)
                    if w.resets_at is not None:
                        resets.add_metric([*org, w.name], w.resets_at)
                extra = snapshot.extra
                if extra is not None and extra.is_enabled is not None:
                    enabled.add_metric(org, 1.0 if extra.is_enabled else 0.0)
                if extra is not None and extra.monthly_limit is not None:
                    limit.add_metric(org, extra.monthly_limit)
                if extra is not None and extra.used_credits is not None:
                    used.add_metric(org, extra.used_credits)
                dropped.add_metric(org, len(snapshot.dropped))
            if state.last_result is not None:
                up.add_metric(org, 1.0 if state.up else 0.0)
            if state.last_success is not None:
                success.add_metric(org, state.last_success)
            if state.duration is not None:
                duration.add_metric(org, state.duration)
            for result in PollResult:
                polls.add_metric([*org, result.value], state.results[result])
            if state.next_poll is not None:
                next_poll.add_metric(org, state.next_poll)
            _credential(expires, reloads, org, state.target.credential, state.target.origin)
        for account in self._accounts:
            label = [account.label]
            _credential(account_expires, account_reloads, label, account.credential, "config")
            for result in PollResult:
                discoveries.add_metric([account.label, result.value], account.results[result])
        yield from (utilization, resets, enabled, limit, used, dropped)
        yield from (up, success, duration, polls, next_poll)
        yield from (_merged(expires, account_expires), _merged(reloads, account_reloads))
        yield discoveries


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
