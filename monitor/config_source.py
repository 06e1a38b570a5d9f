"""The config in force: every part reads its settings from here when it needs them.

SIGHUP hands a new config to `replace`. Most settings apply from the next poll or
request on; those in `RESTART_ONLY` are fixed when the process starts (the listening
socket, the shutdown grace, the size of the upstream connection pool), so they keep their
running values until the next start and `replace` names the ones that differ.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from monitor.schema import Config

# Key paths of the settings that take effect only at the next start.
RESTART_ONLY: tuple[str, ...] = (
    "server.host",
    "server.port",
    "server.shutdown_grace_seconds",
    "server.event_loop",
    "upstream.max_connections",
)


def setting(config: Config, path: str) -> Any:
    """The value at a dotted key path of `config`, e.g. `setting(c, "server.port")`."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def with_settings(config: Config, values: dict[str, Any]) -> Config:
    """`config` with the given `section.key` settings replaced (values already valid)."""
    by_section: dict[str, dict[str, Any]] = defaultdict(dict)
    for path, value in values.items():
        section, key = path.split(".", 1)
        by_section[section][key] = value
    return config.model_copy(
        update={
            section: getattr(config, section).model_copy(update=keys)
            for section, keys in by_section.items()
        }
    )


class ConfigSource:
    """Holds the running config and the outcome of the last (re)load, for the
    `claude_monitor_config_last_reload_*` gauges."""

    def __init__(self, config: Config, *, loaded_at: float) -> None:
        self._current = config
        self.reload_successful = True
        self.last_success = loaded_at

    @property
    def current(self) -> Config:
        return self._current

    def replace(self, new: Config, *, at: float) -> list[str]:
        """Run with `new` from now on, except the `RESTART_ONLY` settings, which keep their
        running values; returns the key paths of those that `new` would change."""
        old = self._current
        waiting = [path for path in RESTART_ONLY if setting(new, path) != setting(old, path)]
        self._current = with_settings(new, {path: setting(old, path) for path in waiting})
        self.reload_successful = True
        self.last_success = at
        return waiting

    def refused(self) -> None:
        """A reload failed: the running config stays, and the gauge says so."""
        self.reload_successful = False
