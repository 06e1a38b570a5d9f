"""Which organizations this replica polls, and how to reach each of them.

The configured orgs come first, then those discovered from accounts; an org both listed
and discovered is polled once, as listed; `[poll] shard` keeps this replica's share.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from monitor.config_source import ConfigSource
from monitor.credentials import LiveCredential
from monitor.schema import DEFAULT_USAGE_PATH, Config
from monitor.sharding import in_shard, parse_shard


@dataclass(frozen=True)
class OrgTarget:
    """An organization to poll, with everything needed to reach it."""

    uuid: str
    name: str
    base_url: str
    usage_path: str
    # Compared by identity: a reload builds new ones, and the store then takes the new
    # target; within one config the same object serves every poll.
    credential: LiveCredential = field(repr=False)
    origin: str = "config"  # "config", or "account <name>" for a discovered org

    @property
    def usage_url(self) -> str:
        return self.base_url + self.usage_path.replace("{org_uuid}", self.uuid)


def configured_targets(config: Config, clock: Callable[[], float] = time.time) -> list[OrgTarget]:
    """One target per `[[orgs]]` table, each with a credential that follows its source."""
    default_path = config.upstream.usage_path
    return [
        OrgTarget(
            uuid=str(org.uuid),
            name=org.label,
            base_url=org.base_url or config.upstream.base_url,
            usage_path=org.usage_path or default_path or DEFAULT_USAGE_PATH,
            credential=org.live_credential(f"org={org.label}", clock),
        )
        for org in config.orgs
    ]


def select_targets(
    configured: Iterable[OrgTarget], discovered: Iterable[OrgTarget], shard: str | None
) -> list[OrgTarget]:
    """Configured orgs, then discovered ones not configured; each once; in this shard."""
    chosen: dict[str, OrgTarget] = {}
    for target in (*configured, *discovered):
        chosen.setdefault(target.uuid, target)
    parsed = None if shard is None else parse_shard(shard)
    return [t for t in chosen.values() if in_shard(t.uuid, parsed)]


class Targets:
    """The orgs to poll now: the running config's, plus what discovery last found."""

    def __init__(self, config: ConfigSource, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._configured: tuple[Config | None, list[OrgTarget]] = (None, [])
        self._discovered: list[OrgTarget] = []

    def set_discovered(self, targets: Iterable[OrgTarget]) -> None:
        self._discovered = list(targets)

    def configured(self) -> list[OrgTarget]:
        config = self._config.current
        if self._configured[0] is not config:  # rebuilt once per (re)loaded config
            self._configured = (config, configured_targets(config, self._clock))
        return self._configured[1]

    def current(self) -> list[OrgTarget]:
        return select_targets(self.configured(), self._discovered, self._config.current.poll.shard)
