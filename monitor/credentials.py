"""Credentials: secrets read once from a variable or a file while the config is validated,
held as `SecretStr`, and never printed (masked, or named by where they came from)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import PlainSerializer, PlainValidator, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError

CredentialKind = Literal["bearer", "session"]


@dataclass(frozen=True)
class Credential:
    """A resolved secret and how to present it; its value never shows in repr or str."""

    kind: CredentialKind
    secret: SecretStr = field(repr=False)
    source: str  # where it came from, e.g. "$CLAUDE_TOKEN" or "file /run/secrets/acme"

    def headers(self) -> dict[str, str]:
        value = self.secret.get_secret_value()
        if self.kind == "bearer":
            return {"Authorization": f"Bearer {value}"}
        return {"Cookie": f"sessionKey={value}"}

    @property
    def fingerprint(self) -> str:
        """A stable id of the secret, for grouping orgs that share one (never exported)."""
        digest = hashlib.sha256(self.secret.get_secret_value().encode()).hexdigest()
        return f"{self.kind}:{digest[:16]}"

    def masked(self) -> str:
        # Not even a prefix: tokens share well-known prefixes, and the length and source
        # are what an operator needs to tell two credentials apart.
        length = len(self.secret.get_secret_value())
        return f"{self.kind} ******** ({length} chars, from {self.source})"

    def __str__(self) -> str:
        return f"{self.kind} credential from {self.source}"


def _environ(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context or {}
    env = context.get("environ")
    return env if env is not None else os.environ


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    base = context.get("base_dir")
    return Path(base) if base is not None else Path.cwd()


def validation_warnings(info: ValidationInfo) -> list[str] | None:
    context = info.context or {}
    found = context.get("warnings")
    return found if isinstance(found, list) else None


@dataclass(frozen=True)
class ResolvedSecret:
    """A secret read once at load time, with where it came from (safe to print)."""

    origin: str
    value: SecretStr = field(repr=False)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _secret_from_env(value: Any, info: ValidationInfo) -> ResolvedSecret:
    if not isinstance(value, str) or not value:
        raise PydanticCustomError("secret_name", "must be the name of an environment variable")
    if not _ENV_NAME.fullmatch(value):
        # Likely the secret itself pasted here: say so without echoing it.
        raise PydanticCustomError(
            "secret_name",
            "must be the name of an environment variable, not the secret itself "
            "(letters, digits and _ only)",
        )
    raw = _environ(info).get(value)
    if raw is None:
        raise PydanticCustomError(
            "secret_missing", "environment variable {name} is not set", {"name": value}
        )
    if not raw.strip():
        raise PydanticCustomError(
            "secret_empty", "environment variable {name} is empty", {"name": value}
        )
    return ResolvedSecret(f"${value}", SecretStr(raw.strip()))


def _secret_from_file(value: Any, info: ValidationInfo) -> ResolvedSecret:
    if not isinstance(value, str) or not value:
        raise PydanticCustomError("secret_name", "must be a file path")
    path = Path(value)
    if not path.is_absolute():
        path = _base_dir(info) / path
    try:
        raw = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise PydanticCustomError(
            "secret_missing", "file {path} does not exist", {"path": str(path)}
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise PydanticCustomError(
            "secret_unreadable",
            "file {path} cannot be read: {reason}",
            {"path": str(path), "reason": reason},
        ) from None
    if not raw.strip():
        raise PydanticCustomError("secret_empty", "file {path} is empty", {"path": str(path)})
    warnings = validation_warnings(info)
    if warnings is not None and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"secret file {path} is readable by group or others (chmod 600 it)")
    return ResolvedSecret(f"file {path}", SecretStr(raw.strip()))


def _secret_origin(secret: ResolvedSecret) -> str:
    return secret.origin


# Dumped as where the secret came from, never its value.
_DUMP_ORIGIN = PlainSerializer(_secret_origin, return_type=str)
EnvSecret = Annotated[ResolvedSecret, PlainValidator(_secret_from_env), _DUMP_ORIGIN]
FileSecret = Annotated[ResolvedSecret, PlainValidator(_secret_from_file), _DUMP_ORIGIN]
