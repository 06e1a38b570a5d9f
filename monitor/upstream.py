"""Calls monitor makes on its own behalf: an org's usage and an account's bootstrap.

Every failure becomes a `PollError` whose `result` is the bounded `result` label, with a
message that says what happened upstream and never contains the credential.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp import hdrs

from monitor.config_source import ConfigSource
from monitor.credentials import Credential, LiveCredential
from monitor.schema import UpstreamConfig
from monitor.state import PollResult
from monitor.targets import OrgTarget
from monitor.usage import UsageSnapshot, json_int, parse_usage, well_formed

log = logging.getLogger("monitor.upstream")

MAX_BODY_BYTES = 1024 * 1024
SESSION_COOKIE = "sessionKey"
# A discovered org's name becomes its `org` label: as long as a configured one may be.
MAX_NAME_LENGTH = 128
SESSION_INVALID = "account_session_invalid"
_NO_TIMEOUT = aiohttp.ClientTimeout()
# A longer Retry-After (or an absurd one) is taken as this: still a long wait, but a
# finite one the scheduler can turn into a date.
MAX_RETRY_AFTER_SECONDS = 7 * 86400.0
_STATUS_RESULTS = {
    401: PollResult.UNAUTHORIZED,
    403: PollResult.FORBIDDEN,
    404: PollResult.NOT_FOUND,
    429: PollResult.RATE_LIMITED,
}


class PollError(Exception):
    def __init__(
        self,
        result: PollResult,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        credential_rejected: bool = False,
    ) -> None:
        super().__init__(message)
        self.result = result
        self.message = message
        self.status = status
        self.retry_after = retry_after
        # 401, or claude.ai's 403 `account_session_invalid`: worth re-reading the source.
        self.credential_rejected = credential_rejected


@dataclass(frozen=True)
class DiscoveredOrg:
    uuid: str
    name: str | None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit() alone accepts "²"
        return min(float(text), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        return None
    return min(max(0.0, moment.timestamp() - now), MAX_RETRY_AFTER_SECONDS)


def upstream_error_message(body: bytes) -> str | None:
    """The `error.message` of an upstream JSON error body, if it has one."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = error.get("message") or error.get("type")
        if isinstance(message, str):
            return well_formed(message[:200])
    return None


def looks_like_html(content_type: str, body: bytes) -> bool:
    head = body[:512].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def failure_for_status(
    status: int, body: bytes, content_type: str, retry_after: str | None, now: float
) -> PollError:
    """Map a non-200 answer onto a PollError (pure, so every status is a plain test)."""
    detail = upstream_error_message(body)
    if detail is None and looks_like_html(content_type, body):
        detail = "an HTML page instead of JSON (Cloudflare challenge?)"
    text = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in _STATUS_RESULTS:
        result = _STATUS_RESULTS[status]
    elif status >= 500:
        result = PollResult.SERVER_ERROR
    else:
        result = PollResult.INVALID_RESPONSE
    wait = parse_retry_after(retry_after, now) if result is PollResult.RATE_LIMITED else None
    rejected = status == 401 or (status == 403 and SESSION_INVALID.encode() in body)
    return PollError(result, text, status=status, retry_after=wait, credential_rejected=rejected)


def decode_json_object(body: bytes, content_type: str) -> dict[str, Any]:
    if looks_like_html(content_type, body):
        raise PollError(PollResult.INVALID_RESPONSE, "HTML page instead of JSON (Cloudflare?)")
    try:
        payload = json.loads(body, parse_int=json_int)
    except json.JSONDecodeError as exc:
        raise PollError(PollResult.INVALID_RESPONSE, f"body is not JSON ({exc.msg})") from None
    except ValueError:
        raise PollError(PollResult.INVALID_RESPONSE, "body is not UTF-8 JSON") from None
    except RecursionError:
        raise PollError(PollResult.INVALID_RESPONSE, "body is JSON nested too deeply") from None
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise PollError(PollResult.INVALID_RESPONSE, f"JSON {kind} where an object was expected")
    return payload


def parse_bootstrap(payload: Mapping[str, Any]) -> list[DiscoveredOrg]:
    """Organizations of an AccountBootstrap, bare or under `account`."""
    account = payload.get("account", payload)
    memberships = account.get("memberships") if isinstance(account, dict) else None
    if not isinstance(memberships, list):
        raise PollError(PollResult.INVALID_RESPONSE, "bootstrap has no memberships list")
    found: dict[str, DiscoveredOrg] = {}
    for membership in memberships:
        org = membership.get("organization") if isinstance(membership, dict) else None
        if not isinstance(org, dict):
            continue
        try:
            org_uuid = str(uuid.UUID(str(org.get("uuid"))))
        except ValueError:
            continue
        name = org.get("name")
        label = (
            well_formed(name[:MAX_NAME_LENGTH]) if isinstance(name, str) and name.strip() else None
        )
        found.setdefault(org_uuid, DiscoveredOrg(org_uuid, label))
    return list(found.values())


class UpstreamClient:
    """The process's one upstream ClientSession, and monitor's own calls over it.

    `open()` and `close()` bracket the session's life (the app calls them from a
    cleanup_ctx); the proxy forwards over `session` too, sharing its connection pool.
    """

    def __init__(self, config: ConfigSource) -> None:
        self._source = config
        self._timeout: tuple[UpstreamConfig | None, aiohttp.ClientTimeout] = (None, _NO_TIMEOUT)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # The pool's size is fixed here: `max_connections` is a restart-only setting.
        connector = aiohttp.TCPConnector(limit=self.config.max_connections)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # A stray HTTP(S)_PROXY must not reroute credentials.
            trust_env=False,
            # No cookie jar: the session is shared by every caller of the proxy and by the
            # polls, and a jar would send one caller's cookies (a rotated sessionKey, a
            # Cloudflare cookie) with every other caller's requests to the same host.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream session is not open (app not started)")
        return self._session

    @property
    def config(self) -> UpstreamConfig:
        """The running `[upstream]` section."""
        return self._source.current.upstream

    @property
    def timeout(self) -> aiohttp.ClientTimeout:
        """`timeout_seconds` for the whole upstream exchange (connection, headers and body),
        polls and proxied requests alike; built once per (re)loaded config."""
        config = self.config
        if self._timeout[0] is not config:
            self._timeout = (config, aiohttp.ClientTimeout(total=config.timeout_seconds))
        return self._timeout[1]

    def _headers(self, credential: Credential) -> dict[str, str]:
        config = self.config
        return {
            "Accept": "application/json",
            "User-Agent": config.user_agent,
            **config.headers,
            **credential.headers(),
        }

    async def get_json(self, url: str, credential: LiveCredential) -> dict[str, Any]:
        """GET `url` with the credential as its source has it now. A poll whose credential
        is known to have expired is not sent; one the upstream rejects (401, or 403
        `account_session_invalid`) is sent once more if re-reading the source brought a
        new secret, and counts as that retry."""
        await credential.refresh()
        if credential.expired():
            raise _expired(credential)
        try:
            return await self._get_json_once(url, credential)
        except PollError as exc:
            if not exc.credential_rejected or not await credential.reread():
                raise
        log.info("credential of %s renewed after a rejection; retrying", credential.label)
        return await self._get_json_once(url, credential)

    async def _get_json_once(self, url: str, credential: LiveCredential) -> dict[str, Any]:
        current = credential.current
        try:
            return await self._get_json(url, credential, current)
        except PollError as exc:
            redacted = _redact(exc.message, current.secret.get_secret_value())
            if redacted != exc.message:
                exc.message = redacted
                exc.args = (exc.message,)
            raise

    async def _get_json(
        self, url: str, credential: LiveCredential, current: Credential
    ) -> dict[str, Any]:
        try:
            async with self.session.get(
                url,
                headers=self._headers(current),
                timeout=self.timeout,
                allow_redirects=False,
            ) as response:
                # Cookies are parsed only when the answer sets one (most never do).
                if hdrs.SET_COOKIE in response.headers:
                    rotated = response.cookies.get(SESSION_COOKIE)
                    if rotated is not None and rotated.value:
                        credential.rotate(rotated.value)
                body = await _read_limited(response)
                content_type = response.headers.get("Content-Type", "").lower()
                if response.status != 200:
                    retry_after = response.headers.get("Retry-After")
                    raise failure_for_status(
                        response.status, body, content_type, retry_after, time.time()
                    )
                return decode_json_object(body, content_type)
        except TimeoutError:
            seconds = self.config.timeout_seconds
            raise PollError(PollResult.TIMEOUT, f"no answer within {seconds:g} s") from None
        except aiohttp.ClientPayloadError as exc:
            raise PollError(
                PollResult.CONNECTION_ERROR, f"body cut short: {_reason(exc)}"
            ) from None
        except aiohttp.ClientError as exc:
            raise PollError(PollResult.CONNECTION_ERROR, _reason(exc)) from None

    async def fetch_usage(self, target: OrgTarget) -> UsageSnapshot:
        payload = await self.get_json(target.usage_url, target.credential)
        return parse_usage(payload, self._source.current.poll.max_windows_per_org)

    async def fetch_bootstrap(self, url: str, credential: LiveCredential) -> list[DiscoveredOrg]:
        return parse_bootstrap(await self.get_json(url, credential))


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    declared = response.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise PollError(
            PollResult.INVALID_RESPONSE, f"body of {declared} bytes is over the 1 MiB limit"
        )
    if declared is not None and hdrs.CONTENT_ENCODING not in response.headers:
        return await response.read()  # exactly the declared bytes: nothing to inflate
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PollError(PollResult.INVALID_RESPONSE, "body is over the 1 MiB limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _expired(credential: LiveCredential) -> PollError:
    expires_at = credential.expires_at or 0.0
    stamp = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return PollError(
        PollResult.CREDENTIAL_EXPIRED,
        f"not sent: the credential ({credential.spec.describe()}) expired at {stamp} and "
        "its source has no newer one yet",
    )


def _redact(text: str, secret: str) -> str:
    if not secret:
        return text
    text = text.replace(secret, "***")
    # An upstream message is cut at 200 characters, maybe in the middle of the secret.
    for size in range(len(secret) - 1, 3, -1):
        if text.endswith(secret[:size]):
            return text[:-size] + "***"
    return text


def _reason(exc: BaseException) -> str:
    # aiohttp's messages name the host and port, never request headers, so they are safe.
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300] if text != type(exc).__name__ else text


__all__ = [
    "MAX_BODY_BYTES",
    "DiscoveredOrg",
    "PollError",
    "UpstreamClient",
    "decode_json_object",
    "failure_for_status",
    "parse_bootstrap",
    "parse_retry_after",
]
