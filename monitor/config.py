"""Load and validate `config.toml`.

The schema is pydantic models with `extra="forbid"`; secrets are resolved during the same
validation pass (from the environment mapping or a file given in the validation context),
so one refusal lists every problem at once, each by its key path.
"""

from __future__ import annotations

import os
import re
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from monitor.credentials import (
    Credential,
    CredentialKind,
    EnvSecret,
    FileSecret,
    ResolvedSecret,
    validation_warnings,
)

DEFAULT_USAGE_PATH = "/api/organizations/{org_uuid}/usage"
DEFAULT_BOOTSTRAP_PATH = "/api/bootstrap"
CONFIG_ENV = "MONITOR_CONFIG"


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


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
        raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; {only}")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=1, le=65535)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)


class UpstreamConfig(_Section):
    base_url: str = "https://api.anthropic.com"
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


def parse_shard(value: str) -> tuple[int, int]:
    """`"2/3"` -> (2, 3): this replica is shard 2 (1-based) of 3."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not match:
        raise ValueError(f"must look like '2/3' (this shard / number of shards), got {value!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: the index must be between 1 and {count}")
    return index, count


class _CredentialSource(_Section):
    token_env: EnvSecret | None = None
    token_file: FileSecret | None = None
    session_key_env: EnvSecret | None = None
    session_key_file: FileSecret | None = None
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_base_url(value)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [key for key in _SOURCE_KEYS if getattr(self, key) is not None]
        if not given:
            raise PydanticCustomError(
                "credential_count",
                "no credential: set one of {keys}",
                {"keys": ", ".join(_SOURCE_KEYS)},
            )
        if len(given) > 1:
            raise PydanticCustomError(
                "credential_count",
                "more than one credential ({keys}): keep exactly one",
                {"keys": " and ".join(given)},
            )
        return self

    def credential(self) -> Credential:
        for key in _SOURCE_KEYS:
            secret: ResolvedSecret | None = getattr(self, key)
            if secret is not None:
                kind: CredentialKind = "bearer" if key.startswith("token") else "session"
                return Credential(kind=kind, secret=secret.value, source=secret.origin)
        raise AssertionError("a validated section has exactly one credential")


_SOURCE_KEYS = ("token_env", "token_file", "session_key_env", "session_key_file")


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


class Config(_Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    poll: PollConfig = Field(default_factory=PollConfig)
    orgs: list[OrgConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(default_factory=list)

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


def duplicate_org_problems(data: Mapping[str, Any]) -> list[str]:
    """Orgs listed twice (by uuid or by name), found on the raw document so they are
    reported together with every other problem."""
    orgs = data.get("orgs")
    if not isinstance(orgs, list):
        return []
    problems: list[str] = []
    seen_uuid: dict[uuid.UUID, int] = {}
    seen_name: dict[str, int] = {}
    for index, org in enumerate(orgs):
        if not isinstance(org, Mapping):
            continue
        try:
            org_uuid = uuid.UUID(str(org.get("uuid")))
        except ValueError:
            continue
        if org_uuid in seen_uuid:
            first = seen_uuid[org_uuid]
            problems.append(f"orgs[{index}].uuid: the same org as orgs[{first}]; list it once")
            continue
        seen_uuid[org_uuid] = index
        raw_name = org.get("name")
        name = raw_name if isinstance(raw_name, str) else str(org_uuid)
        if name in seen_name:
            first = seen_name[name]
            problems.append(f"orgs[{index}].name: {name!r} is already the name of orgs[{first}]")
        seen_name.setdefault(name, index)
    return problems


def _path_of(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: ErrorDetails | dict[str, Any]) -> str:
    kind = error.get("type", "")
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the README's configuration reference)"
    if kind == "uuid_parsing" or kind == "uuid_type":
        return f"not a UUID (got {got!r})"
    if kind == "missing":
        return "required key is missing"
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind in _BOUND_ERRORS:
        return f"{msg[0].lower()}{msg[1:]} (got {got!r})"
    return msg


_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def format_errors(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = _path_of(loc)
        problems.append(f"{path}: {_message(error)}" if path else _message(error))
    return problems


def parse_config(
    data: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    source: str = "config",
    warnings: list[str] | None = None,
) -> Config:
    """Validate a decoded TOML document and resolve its secrets; ConfigError lists every problem."""
    context: dict[str, Any] = {"environ": environ if environ is not None else os.environ}
    if base_dir is not None:
        context["base_dir"] = base_dir
    if warnings is not None:
        context["warnings"] = warnings
    problems: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        problems = format_errors(exc)
    problems += duplicate_org_problems(data)
    if problems or config is None:
        raise ConfigError(problems, source)
    return config


def load_config(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
) -> Config:
    """Read and validate a TOML file. Relative `token_file`s are relative to the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f"--config PATH or ${CONFIG_ENV} choose another file"
        raise ConfigError([f"file not found ({hint})"], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot be read: {exc}"], str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    return parse_config(
        data, environ=environ, base_dir=path.parent, source=str(path), warnings=warnings
    )


def apply_overrides(
    config: Config, *, host: str | None = None, port: int | None = None, shard: str | None = None
) -> Config:
    """The config with command-line overrides applied, validated like the file's keys."""
    server = config.server.model_dump()
    server.update({k: v for k, v in (("host", host), ("port", port)) if v is not None})
    poll = config.poll.model_dump()
    if shard is not None:
        poll["shard"] = shard
    try:
        return config.model_copy(
            update={
                "server": ServerConfig.model_validate(server),
                "poll": PollConfig.model_validate(poll),
            }
        )
    except ValidationError as exc:
        problems = [f"--{p.split('.', 1)[0].split(':')[0]}: {p}" for p in format_errors(exc)]
        raise ConfigError(problems, "command line") from None


def config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(explicit or env.get(CONFIG_ENV) or "config.toml")
