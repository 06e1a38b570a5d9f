"""Read `config.toml`, validate it against `monitor.schema`, and report every problem.

A refusal lists every problem at once, each by its key path (`orgs[1].uuid: not a
UUID`); command-line overrides are validated the same way.
"""

from __future__ import annotations

import os
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from monitor.keypath import key_path
from monitor.schema import Config, PollConfig, ServerConfig

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


def duplicate_account_problems(data: Mapping[str, Any]) -> list[str]:
    """Accounts with the same name (the `account` label, `accounts[N]` when unnamed)."""
    accounts = data.get("accounts")
    if not isinstance(accounts, list):
        return []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, account in enumerate(accounts):
        raw = account.get("name") if isinstance(account, Mapping) else None
        name = raw if isinstance(raw, str) else f"accounts[{index}]"
        if name in seen:
            problems.append(
                f"accounts[{index}].name: {name!r} is already the name of accounts[{seen[name]}]"
            )
        seen.setdefault(name, index)
    return problems


def _message(error: ErrorDetails | dict[str, Any]) -> str:
    kind = error.get("type", "")
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the README's configuration reference)"
    if kind in {"uuid_parsing", "uuid_type"}:
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
        # A credential problem found while reading the secret names its key in `field`.
        field = (error.get("ctx") or {}).get("field")
        path = key_path((*loc, field) if isinstance(field, str) else loc)
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
    problems += duplicate_org_problems(data) + duplicate_account_problems(data)
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
