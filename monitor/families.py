"""The per-org metric families of `/metrics`: names, types and help, in render order."""

from __future__ import annotations

from dataclasses import dataclass

CACHED = "Cached from the last poll of the usage endpoint."


@dataclass(frozen=True)
class Family:
    name: str  # as in the text format: a counter's name ends in `_total`
    type: str
    help: str

    def header(self, openmetrics: bool = False) -> str:
        """The HELP and TYPE lines. OpenMetrics names a counter family without the
        `_total` its samples carry."""
        name = self.name
        if openmetrics and self.type == "counter":
            name = name.removesuffix("_total")
        return f"# HELP {name} {self.help}\n# TYPE {name} {self.type}\n"


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
WINDOWS_DROPPED = Family(
    "claude_usage_windows_dropped",
    "gauge",
    "Usage windows the last answer had beyond [poll] max_windows_per_org (not exported).",
)
WINDOW_LENGTH = Family(
    "claude_usage_window_length_seconds",
    "gauge",
    "Length of the usage window in seconds: documented (five_hour 5 h, seven_day* 7 d) "
    "or learned from two resets that agree; no sample while unknown.",
)
# The families rendered from the upstream's payload (and what its resets taught), then
# those about the polls.
SNAPSHOT_FAMILIES = (
    UTILIZATION,
    RESETS_AT,
    EXTRA_ENABLED,
    EXTRA_LIMIT,
    EXTRA_USED,
    WINDOWS_DROPPED,
    WINDOW_LENGTH,
)
HEALTH_FAMILIES = (UP, LAST_SUCCESS, DURATION, POLLS, NEXT_POLL)
CREDENTIAL_EXPIRES = Family(
    "claude_usage_credential_expires_timestamp_seconds",
    "gauge",
    "When the credential in use expires, Unix seconds, where its source says.",
)
CREDENTIAL_RELOADS = Family(
    "claude_usage_credential_reloads_total",
    "counter",
    "Re-reads of a credential's file or command, by result (changed, unchanged, error).",
)
DISCOVERIES = Family(
    "claude_usage_discoveries_total",
    "counter",
    "Discoveries of the orgs of an [[accounts]] credential, by result.",
)
# About the credential each org (and each discovery account) is polled with, and the
# discovery accounts' own calls.
CREDENTIAL_FAMILIES = (CREDENTIAL_EXPIRES, CREDENTIAL_RELOADS)
ACCOUNT_FAMILIES = (DISCOVERIES,)
USAGE_FAMILIES = SNAPSHOT_FAMILIES + HEALTH_FAMILIES + CREDENTIAL_FAMILIES + ACCOUNT_FAMILIES
