"""Find the orgs of each `[[accounts]]` credential from its AccountBootstrap.

Every account is asked at start and then hourly, sooner again after a failure; what it
last answered stays in force while the upstream fails. The orgs found go to `Targets`,
and `on_change` tells the poller to follow them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.config_source import ConfigSource
from monitor.credentials import LiveCredential
from monitor.failure_log import FailureLog
from monitor.jobs import JobScheduler
from monitor.schema import AccountConfig
from monitor.state import PollResult
from monitor.targets import OrgTarget, Targets
from monitor.upstream import PollError, UpstreamClient

log = logging.getLogger("monitor.discovery")

DISCOVERY_INTERVAL_SECONDS = 3600.0
# After a failure, the next attempt comes after the poll interval, doubling per failure
# in a row (at most 2**MAX_BACKOFF_STEPS times), never later than the hourly one.
MAX_BACKOFF_STEPS = 8


@dataclass
class Account:
    config: AccountConfig
    label: str
    credential: LiveCredential
    discovered: list[OrgTarget] = field(default_factory=list)
    done_once: bool = False
    failures_in_a_row: int = 0
    results: dict[PollResult, int] = field(default_factory=lambda: dict.fromkeys(PollResult, 0))
    dropped: int = 0  # orgs beyond [poll] max_orgs_per_account in the last answer


def accounts_for(
    configs: list[AccountConfig], previous: list[Account], clock: Callable[[], float]
) -> list[Account]:
    """Accounts for a (re)loaded config. One whose settings did not change is kept as it
    was (what it discovered, its credential), so a reload neither drops nor re-adds its
    orgs."""
    accounts = []
    unclaimed = list(previous)
    for index, config in enumerate(configs):
        kept = next((old for old in unclaimed if old.config == config), None)
        if kept is not None:
            unclaimed.remove(kept)
            accounts.append(kept)
            continue
        label = config.name or f"accounts[{index}]"
        accounts.append(Account(config, label, config.live_credential(f"account={label}", clock)))
    return accounts


class Discovery:
    def __init__(
        self,
        config: ConfigSource,
        targets: Targets,
        client: UpstreamClient,
        jobs: JobScheduler,
        *,
        on_change: Callable[[], object],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._targets = targets
        self._client = client
        self._jobs = jobs
        self._on_change = on_change
        self._clock = clock
        self._failures = FailureLog(log, "discovery", clock)
        self._scheduling = False
        self.accounts = accounts_for(config.current.accounts, [], clock)

    def start(self) -> None:
        self._scheduling = True
        for index in range(len(self.accounts)):
            self._schedule(index, 0.0)

    def stop(self) -> None:
        self._scheduling = False

    def config_changed(self) -> None:
        """A reload: accounts follow the config, and every one is asked again now."""
        count = len(self.accounts)
        self.accounts = accounts_for(self._config.current.accounts, self.accounts, self._clock)
        self._publish()
        for index in range(len(self.accounts), count):
            self._jobs.cancel(_job_id(index))
        if self._scheduling:
            for index in range(len(self.accounts)):
                self._schedule(index, 0.0)

    def pending_accounts(self) -> list[str]:
        return [a.label for a in self.accounts if not a.done_once]

    def _publish(self) -> None:
        self._targets.set_discovered(t for a in self.accounts for t in a.discovered)

    def _schedule(self, index: int, delay: float) -> None:
        if self._scheduling:
            self._jobs.schedule(_job_id(index), self._clock() + delay, lambda: self._job(index))

    async def _job(self, index: int) -> None:
        ok = await self.discover(index)
        if index >= len(self.accounts):  # removed by a reload meanwhile
            return
        account = self.accounts[index]
        if ok:
            delay = DISCOVERY_INTERVAL_SECONDS
        else:
            steps = min(account.failures_in_a_row - 1, MAX_BACKOFF_STEPS)
            interval = self._config.current.poll.interval_seconds
            delay = min(interval * 2.0**steps, DISCOVERY_INTERVAL_SECONDS)
        self._schedule(index, delay)

    async def discover(self, index: int) -> bool:
        """Ask one account for its orgs; keep the previous list if that fails."""
        account = self.accounts[index]
        upstream = self._config.current.upstream
        base_url = account.config.base_url or upstream.base_url
        credential = account.credential
        subject = f"account={account.label}"
        try:
            found = await self._client.fetch_bootstrap(
                base_url + account.config.bootstrap_path, credential
            )
        except PollError as exc:
            failure: PollError | None = exc
        except Exception as exc:
            # A bug must not end this account's discovery: count it, log it, go on.
            log.exception("unexpected error in discovery for %s", subject)
            failure = PollError(
                PollResult.INVALID_RESPONSE,
                f"unexpected {type(exc).__name__} during discovery (see monitor's log)",
            )
        else:
            failure = None
        account.done_once = True
        if failure is not None:
            account.failures_in_a_row += 1
            account.results[failure.result] += 1
            self._failures.failed(account.label, subject, failure.result, failure.message)
            return False
        usage_path = account.config.usage_path or upstream.usage_path
        limit = self._config.current.poll.max_orgs_per_account
        dropped = max(0, len(found) - limit)
        if dropped != account.dropped:  # logged once per change
            log.warning(
                "%s: the account has %d orgs; polling the first %d ([poll] max_orgs_per_account)",
                subject,
                len(found),
                min(limit, len(found)),
            )
            account.dropped = dropped
        found = found[:limit]
        account.discovered = [
            OrgTarget(
                uuid=org.uuid,
                name=org.name or org.uuid,
                base_url=base_url,
                usage_path=usage_path,
                credential=credential,
                origin=f"account {account.label}",
            )
            for org in found
        ]
        account.failures_in_a_row = 0
        account.results[PollResult.SUCCESS] += 1
        self._failures.succeeded(account.label, subject)
        log.info("discovered %d org(s) for %s", len(found), subject)
        self._publish()
        self._on_change()
        return True

    async def discover_all(self) -> None:
        await asyncio.gather(*(self.discover(i) for i in range(len(self.accounts))))


def _job_id(index: int) -> str:
    return f"discover:{index}"
