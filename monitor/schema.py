"""The shape of `config.toml`: pydantic models with `extra="forbid"`, one per section.

Secrets are resolved while these models validate (see `monitor.credentials`), so one
refusal lists every problem at once. Loading a file and formatting the problems is
`monitor.config`'s job.
"""

from __future__ import annotations

import importlib.util
import os
import re
import uuid
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.credential_schema import CredentialFields, validation_context, validation_warnings
from monitor.event_loop import EventLoop, uvloop_installed
from monitor.sharding import parse_shard

DEFAULT_USAGE_PATH = "/api/organizations/{org_uuid}/usage"
DEFAULT_BOOTSTRAP_PATH = "/api/bootstrap"

_PATH_TEMPLATE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/{}-]*$")


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/")


def _check_path_template(value: str, placeholder: str | None) -> str:
    if not _PATH_TEMPLATE.match(value):
        raise ValueError("must be a path starting with '/'")
    names = set(re.findall(r"{([^{}]*)}", value))
    allowed = {placeholder} if placeholder else set()
    unknown = names - allowed
    if unknown:
        only = f"only {{{placeholder}}} is allowed" if placeholder else "no placeholder is allowed"
        raise ValueError(f"unknown placeholder {{{min(unknown)}}}; {only}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=1, le=65535)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)
    # "auto": uvloop when it is installed (`pip install 'monitor[uvloop]'`), else asyncio.
    event_loop: EventLoop = "auto"

    @field_validator("event_loop")
    @classmethod
    def _installed(cls, value: EventLoop) -> EventLoop:
        if value == "uvloop" and not uvloop_installed():
            raise ValueError(
                "uvloop is not installed: pip install 'monitor[uvloop]', or choose \"auto\""
            )
        return value


class UpstreamConfig(_Section):
    base_url: str = "https://api.anthropic.com"
    # The whole upstream exchange (connection, headers and body), polls and proxy alike.
    timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    user_agent: str = "claude-code/2.0"
    headers: dict[str, str] = Field(default_factory=dict)
    usage_path: str = DEFAULT_USAGE_PATH
    max_connections: int = Field(default=100, ge=1, le=10_000)
    # How long a proxied request may wait for a free upstream connection before it is
    # answered 503 `upstream_busy` (back-pressure instead of an unbounded queue).
    pool_wait_seconds: float = Field(default=1.0, gt=0, le=60)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _check_base_url(value)

    @field_validator("usage_path")
    @classmethod
    def _usage_path(cls, value: str) -> str:
        return _check_path_template(value, "org_uuid")

    @field_validator("headers")
    @classmethod
    def _no_credential_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in ("authorization", "cookie"):
                raise ValueError(f"{name!r} cannot be set here: credentials come from each org")
        return value


class PollConfig(_Section):
    interval_seconds: float = Field(default=60.0, ge=1)
    max_interval_seconds: float = Field(default=300.0, ge=1)
    concurrency: int = Field(default=16, ge=1, le=10_000)
    # Each window is a `window` label value: past this, the rest of a payload is dropped.
    max_windows_per_org: int = Field(default=64, ge=1, le=1000)
    # Orgs one [[accounts]] credential may bring in through discovery.
    max_orgs_per_account: int = Field(default=1000, ge=1, le=100_000)
    shard: str | None = None

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        if value is not None:
            parse_shard(value)
        return value

    @field_validator("max_interval_seconds")
    @classmethod
    def _ordered(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval_seconds")
        if interval is not None and value < interval:
            raise ValueError(f"{value:g} is below interval_seconds ({interval:g})")
        return value


# A cached usage answer larger than this is relayed but not kept (usage bodies are a few KB).
MAX_CACHE_ENTRY_BYTES = 256 * 1024


class ProxyConfig(_Section):
    """The proxy's own settings: where the OAuth routes go, the usage cache, the shield."""

    # Where `/api/oauth/usage` and `/api/oauth/profile` are forwarded (Claude Code's host,
    # whatever `[upstream] base_url` is).
    oauth_base_url: str = "https://api.anthropic.com"
    # Identical usage reads within this many seconds share one upstream answer; 0 is off.
    usage_cache_seconds: float = Field(default=0.0, ge=0, le=3600)
    usage_cache_max_entries: int = Field(default=1000, ge=1, le=100_000)
    usage_cache_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024**3)
    # After a 429 on a usage route, answer that credential's usage reads from memory.
    shield_rate_limits: bool = False

    @field_validator("oauth_base_url")
    @classmethod
    def _oauth_base_url(cls, value: str) -> str:
        return _check_base_url(value)

    @property
    def max_entry_bytes(self) -> int:
        """The largest answer the usage cache keeps."""
        return min(MAX_CACHE_ENTRY_BYTES, self.usage_cache_max_bytes)


class _CredentialSource(CredentialFields):
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_base_url(value)


class OrgConfig(_CredentialSource):
    uuid: uuid.UUID
    name: str | None = Field(default=None, min_length=1, max_length=128)
    usage_path: str | None = None

    @field_validator("usage_path")
    @classmethod
    def _usage_path(cls, value: str | None) -> str | None:
        return None if value is None else _check_path_template(value, "org_uuid")

    @property
    def label(self) -> str:
        return self.name or str(self.uuid)


class AccountConfig(_CredentialSource):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    bootstrap_path: str = DEFAULT_BOOTSTRAP_PATH
    usage_path: str | None = None

    @field_validator("bootstrap_path")
    @classmethod
    def _bootstrap_path(cls, value: str) -> str:
        return _check_path_template(value, None)

    @field_validator("usage_path")
    @classmethod
    def _usage_path(cls, value: str | None) -> str | None:
        return None if value is None else _check_path_template(value, "org_uuid")


OTLP_EXTRA = "pip install 'monitor[otlp]'"
# The modules the push needs, from the distributions the `otlp` extra installs.
_OTLP_MODULES = ("opentelemetry.sdk.metrics", "opentelemetry.exporter.otlp.proto.http")
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318/v1/metrics"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Headers the exporter itself sets (or that would break the exchange).
_RESERVED_HEADERS = {"content-type", "content-length", "content-encoding", "host"}


def otlp_extra_installed() -> bool:
    """Whether the `otlp` extra is importable, found without importing it (the daemon
    never loads OpenTelemetry unless `[otlp]` is configured)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in _OTLP_MODULES)
    except ImportError:  # a parent package missing (or blocked) is not installed either
        return False


def _check_otlp_endpoint(value: str, where: str = "") -> str:
    """An OTLP/HTTP URL; `where` names a variable it came from."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.query or parts.fragment:
        # It is logged and shown by check-config: credentials belong in `headers`.
        raise ValueError(f"{where}must not carry a user, query or fragment (use headers)")
    return value


class HeaderFromEnv(_Section):
    """`{ env = "NAME" }`: a header value read from an environment variable at load, kept
    as a secret (masked in `check-config`, never logged)."""

    env: str
    _value: SecretStr = PrivateAttr(default=SecretStr(""))

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "must be the name of an environment variable, not the value itself "
                "(letters, digits and _ only)"
            )
        return value

    @model_validator(mode="after")
    def _read(self, info: ValidationInfo) -> Self:
        environ = validation_context(info).get("environ")
        raw = (environ if environ is not None else os.environ).get(self.env)
        if raw is None:
            raise ValueError(f"environment variable {self.env} is not set")
        value = raw.strip()
        if not value:
            raise ValueError(f"environment variable {self.env} is empty")
        if not (value.isascii() and value.isprintable()):
            raise ValueError(
                f"environment variable {self.env} holds characters a header cannot carry "
                "(printable ASCII only)"
            )
        self._value = SecretStr(value)
        return self

    @property
    def value(self) -> SecretStr:
        return self._value


class OtlpConfig(_Section):
    """`[otlp]`: push the metrics of `/metrics` to an OTLP/HTTP endpoint (extra `otlp`).
    Keys left out here come from the standard `OTEL_EXPORTER_OTLP_*` variables."""

    endpoint: str | None = None
    headers: dict[str, HeaderFromEnv] = Field(default_factory=dict)
    interval_seconds: float = Field(default=60.0, ge=1, le=86400)
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    temporality: Literal["cumulative", "delta"] | None = None
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    _endpoint: str = PrivateAttr(default=DEFAULT_OTLP_ENDPOINT)
    _temporality: str = PrivateAttr(default="cumulative")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_otlp_endpoint(value)

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, HeaderFromEnv]) -> dict[str, HeaderFromEnv]:
        seen: set[str] = set()
        for name in value:
            lower = name.lower()
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if lower in _RESERVED_HEADERS:
                raise ValueError(f"{name!r} is set by the exporter itself")
            if lower in seen:
                raise ValueError(f"{name!r} is given twice (header names ignore case)")
            seen.add(lower)
        return value

    @field_validator("resource_attributes")
    @classmethod
    def _attribute_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name.strip():
                raise ValueError("an attribute name must not be empty")
        return value

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> Self:
        """The extra must be installed; then the endpoint and temporality in force: the
        file's, else the standard variables', else the defaults."""
        if not otlp_extra_installed():
            raise ValueError(f"needs the otlp extra, which is not installed: {OTLP_EXTRA}")
        environ = validation_context(info).get("environ")
        env = environ if environ is not None else os.environ
        if self.endpoint is not None:
            self._endpoint = self.endpoint
        elif env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
            name = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
            self._endpoint = _check_otlp_endpoint(env[name], f"endpoint from ${name} ")
        elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            name = "OTEL_EXPORTER_OTLP_ENDPOINT"
            base = _check_otlp_endpoint(env[name], f"endpoint from ${name} ")
            self._endpoint = base.rstrip("/") + "/v1/metrics"
        preferred = env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "")
        self._temporality = self.temporality or (
            "delta" if preferred.strip().lower() == "delta" else "cumulative"
        )
        return self

    @property
    def push_endpoint(self) -> str:
        """Where the metrics go: `endpoint`, else `$OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`,
        else `$OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`, else localhost:4318."""
        return self._endpoint

    @property
    def push_temporality(self) -> str:
        """`cumulative` (as `/metrics`), or `delta` for backends that take only that."""
        return self._temporality


class Config(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    orgs: list[OrgConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(default_factory=list)
    otlp: OtlpConfig | None = None

    @model_validator(mode="after")
    def _pool_shared_with_polls(self, info: ValidationInfo) -> Self:
        """The proxy keeps its own share of the upstream pool only while polls use at most
        half of it (see `proxy_connection_share`); past that, say so once at load."""
        warnings = validation_warnings(info)
        limit, concurrency = self.upstream.max_connections, self.poll.concurrency
        if warnings is not None and concurrency > limit // 2 and limit > 1:
            warnings.append(
                f"poll.concurrency ({concurrency}) is over half of upstream.max_connections "
                f"({limit}): polls may take connections of the proxy's share, and proxied "
                "requests then wait up to timeout_seconds for one; raise max_connections"
            )
        return self


def proxy_connection_share(max_connections: int, poll_concurrency: int) -> int:
    """Upstream connections the proxy may hold at once: the pool minus what polls can hold
    (`poll.concurrency`), but never less than half the pool, and at least 1. The poller and
    the proxy share one connector of `max_connections`, so while `poll.concurrency` is at
    most half of it, polls can never take a connection a proxied request is waiting for."""
    return max(1, max_connections - min(poll_concurrency, max_connections // 2))
