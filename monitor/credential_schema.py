"""The credential keys of an `[[orgs]]` or `[[accounts]]` table, and reading them at load.

Exactly one source per table: `token_env`, `token_file` or `token_command` (sent as
`Authorization: Bearer`), or the same three `session_key_*` keys (sent as
`Cookie: sessionKey=`). `token_json_key` / `session_key_json_key` take a dotted path into
a JSON file or a command's JSON output. Every secret is read once while the config is
validated, so a missing variable, a file that is not JSON or a command that fails is a
problem listed with its key path, and `monitor` refuses to start.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from monitor.credentials import LiveCredential
from monitor.secret_sources import (
    CredentialKind,
    SecretError,
    SecretReading,
    SecretSpec,
    read_env,
    read_file,
    run_command_now,
)

SOURCE_KEYS = (
    "token_env",
    "token_file",
    "token_command",
    "session_key_env",
    "session_key_file",
    "session_key_command",
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JSON_KEY = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def validation_context(info: ValidationInfo) -> Mapping[str, Any]:
    return info.context or {}


def validation_warnings(info: ValidationInfo) -> list[str] | None:
    found = validation_context(info).get("warnings")
    return found if isinstance(found, list) else None


def secret_problem(field: str, message: str) -> PydanticCustomError:
    """A problem with one credential key; `config.format_errors` puts `field` in the path."""
    return PydanticCustomError("secret", "{message}", {"message": message, "field": field})


class CredentialFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str | None = None
    token_file: str | None = None
    token_command: list[str] | None = None
    token_json_key: str | None = None
    session_key_env: str | None = None
    session_key_file: str | None = None
    session_key_command: list[str] | None = None
    session_key_json_key: str | None = None
    credential_command_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    credential_command_ttl_seconds: float = Field(default=300.0, ge=1, le=7 * 86400)

    _spec: SecretSpec | None = PrivateAttr(default=None)
    _first: SecretReading | None = PrivateAttr(default=None)

    @field_validator("token_env", "session_key_env", mode="before")
    @classmethod
    def _env_name(cls, value: Any) -> Any:
        if value is None:
            return value
        if not isinstance(value, str) or not value:
            raise ValueError("must be the name of an environment variable")
        if not _ENV_NAME.fullmatch(value):
            # Likely the secret itself pasted here: say so without echoing it.
            raise ValueError(
                "must be the name of an environment variable, not the secret itself "
                "(letters, digits and _ only)"
            )
        return value

    @field_validator("token_file", "session_key_file", mode="before")
    @classmethod
    def _file_path(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError("must be a file path")
        return value

    @field_validator("token_command", "session_key_command", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, str):
            raise ValueError(
                'must be a list: the program and its arguments, e.g. ["op", "read", '
                '"op://vault/claude/token"] (never run through a shell)'
            )
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(part, str) and part for part in value)
        ):
            raise ValueError("must be a non-empty list of non-empty strings (the argv)")
        return value

    @field_validator("token_json_key", "session_key_json_key")
    @classmethod
    def _json_key(cls, value: str | None) -> str | None:
        if value is not None and not _JSON_KEY.fullmatch(value):
            raise ValueError("must be a dotted key path like claudeAiOauth.accessToken")
        return value

    @model_validator(mode="after")
    def _read_the_secret(self, info: ValidationInfo) -> Self:
        spec = self._build_spec(info)
        try:
            first = self._read(spec, info)
        except SecretError as exc:
            raise secret_problem(exc.field, exc.message) from None
        self._spec, self._first = spec, first
        return self

    def _build_spec(self, info: ValidationInfo) -> SecretSpec:
        given = [key for key in SOURCE_KEYS if getattr(self, key) is not None]
        if not given:
            raise PydanticCustomError(
                "credential_count",
                "no credential: set one of {keys}",
                {"keys": ", ".join(SOURCE_KEYS)},
            )
        if len(given) > 1:
            raise PydanticCustomError(
                "credential_count",
                "more than one credential ({keys}): keep exactly one",
                {"keys": " and ".join(given)},
            )
        key = given[0]
        prefix, source = key.rsplit("_", 1)
        presented: CredentialKind = "bearer" if prefix == "token" else "session"
        json_key: str | None = getattr(self, f"{prefix}_json_key")
        for other in ("token", "session_key"):
            if other != prefix and getattr(self, f"{other}_json_key") is not None:
                raise secret_problem(f"{other}_json_key", f"goes with {other}_file or _command")
        if json_key is not None and source == "env":
            raise secret_problem(
                f"{prefix}_json_key", f"goes with {prefix}_file or {prefix}_command, not _env"
            )
        value = getattr(self, key)
        return SecretSpec(
            presented=presented,
            source="file" if source == "file" else ("command" if source == "command" else "env"),
            field=key,
            env=value if source == "env" else None,
            path=_absolute(key, value, info) if source == "file" else None,
            argv=tuple(value) if source == "command" else (),
            json_key=json_key,
            timeout=self.credential_command_timeout_seconds,
            ttl=self.credential_command_ttl_seconds,
        )

    def _read(self, spec: SecretSpec, info: ValidationInfo) -> SecretReading:
        if spec.source == "env":
            environ = validation_context(info).get("environ")
            return read_env(spec, environ if environ is not None else os.environ)
        if spec.source == "command":
            return run_command_now(spec, known=[])
        reading = read_file(spec)
        warnings = validation_warnings(info)
        assert spec.path is not None
        if warnings is not None and spec.path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(
                f"secret file {spec.path} is readable by group or others (chmod 600 it)"
            )
        return reading

    @property
    def secret_spec(self) -> SecretSpec:
        assert self._spec is not None, "validated tables have their secret read"
        return self._spec

    def live_credential(self, label: str, clock: Callable[[], float] = time.time) -> LiveCredential:
        """A credential that follows this table's source from what was read at load."""
        assert self._first is not None, "validated tables have their secret read"
        return LiveCredential(self.secret_spec, self._first, label=label, clock=clock)


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _absolute(key: str, value: str, info: ValidationInfo) -> Path:
    """A file key's path: `$VAR` / `${VAR}` expanded (systemd's `$CREDENTIALS_DIRECTORY`),
    `~` expanded, and relative to the config file's folder."""
    environ = validation_context(info).get("environ")
    env: Mapping[str, str] = environ if environ is not None else os.environ

    def expand(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise secret_problem(key, f"${name} in the path is not set")
        return env[name]

    path = Path(_VARIABLE.sub(expand, value)).expanduser()
    if path.is_absolute():
        return path
    base = validation_context(info).get("base_dir")
    return (Path(base) if base is not None else Path.cwd()) / path
