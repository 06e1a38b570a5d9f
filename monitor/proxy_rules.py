"""The proxy's rules as pure functions: local checks of a request, header filters, the
upstream URL.

Nothing here does I/O, so each rule is a plain call in the tests; `monitor.proxy` wires
them to aiohttp and the upstream session.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

from multidict import CIMultiDict, MultiMapping
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from yarl import URL

from monitor.credentials import Credential
from monitor.keypath import key_path
from monitor.proxy_errors import ProxyError, shown, too_large
from monitor.usage import json_int

MAX_REQUEST_BODY_BYTES = 64 * 1024

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ENCODED_SEPARATOR = re.compile(r"%(2f|2e|5c)", re.IGNORECASE)
EXAMPLE_UUID = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def check_raw_path(raw_path: str) -> None:
    """Refuse a request target whose path could climb out of its route once decoded:
    percent-encoded `/`, `.` or `\\`, a raw backslash, or any `.`/`..` segment."""
    path = raw_path.partition("?")[0]
    if "%" not in path and "\\" not in path and "/." not in path and path[:1] != ".":
        return  # the usual case: none of the below can match
    found = _ENCODED_SEPARATOR.search(path)
    if found:
        raise ProxyError(
            400,
            "invalid_path",
            f"the path contains {found.group(0)!r} (an encoded '/', '.' or '\\'); "
            "path parameters must be plain UUIDs or ids",
        )
    if "\\" in path:
        raise ProxyError(400, "invalid_path", "the path contains a backslash")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ProxyError(
            400, "invalid_path", "the path contains a '.' or '..' segment; send the plain path"
        )


def check_path_params(params: Mapping[str, str]) -> None:
    """`org_uuid` must be a UUID; `project_id` a UUID or `[A-Za-z0-9_-]{1,128}`."""
    org_uuid = params.get("org_uuid")
    if org_uuid is not None and not is_uuid(org_uuid):
        raise ProxyError(
            400,
            "invalid_parameter",
            f"org_uuid: not a UUID (got {shown(org_uuid)}); expected something like {EXAMPLE_UUID}",
        )
    project_id = params.get("project_id")
    if project_id is not None and not _PROJECT_ID.fullmatch(project_id):
        raise ProxyError(
            400,
            "invalid_parameter",
            f"project_id: must be a project UUID or 1-128 of A-Z a-z 0-9 _ - "
            f"(got {shown(project_id)})",
        )


def check_memory_query(values: list[str]) -> None:
    """The `project_uuid` values of a memory request's query: exactly one, a UUID."""
    if not values:
        raise ProxyError(
            400,
            "invalid_parameter",
            "project_uuid: required query parameter is missing "
            "(memory is read per project: ?project_uuid=<project uuid>)",
        )
    if len(values) > 1:
        raise ProxyError(
            400, "invalid_parameter", f"project_uuid: given {len(values)} times; give it once"
        )
    if not is_uuid(values[0]):
        raise ProxyError(
            400,
            "invalid_parameter",
            f"project_uuid: not a UUID (got {shown(values[0])}); "
            f"expected something like {EXAMPLE_UUID}",
        )


def check_credentials(headers: Mapping[str, str]) -> None:
    """The caller must bring their own credential; the daemon's are never lent out."""
    if headers.get("Authorization", "").strip() or headers.get("Cookie", "").strip():
        return
    raise ProxyError(
        401,
        "missing_credentials",
        "no Authorization or Cookie header: send your own 'Authorization: Bearer <token>' "
        "or 'Cookie: sessionKey=<key>' (the proxy never adds the daemon's credentials)",
    )


def caller_credential(headers: Mapping[str, str]) -> Credential | None:
    """The credential a caller presents, as monitor's own would be presented: the bearer
    token of `Authorization` if there is one, else the `sessionKey` cookie. Its
    `fingerprint` is comparable with a configured org's; the value stays in memory."""
    authorization = headers.get("Authorization", "").strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return Credential("bearer", SecretStr(token.strip()), "the caller's Authorization")
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(headers.get("Cookie", ""))
    except CookieError:
        return None
    morsel = cookie.get("sessionKey")
    if morsel is None or not morsel.value.strip():
        return None
    return Credential("session", SecretStr(morsel.value.strip()), "the caller's Cookie")


def credentials_digest(headers: MultiMapping[str]) -> str:
    """A hash of every `Authorization` and `Cookie` value the caller sent, in order: two
    requests share a cache entry only when this is equal. Never the values themselves."""
    digest = hashlib.sha256()
    for name in ("Authorization", "Cookie"):
        for value in headers.getall(name, []):
            digest.update(name.encode() + b"\0" + value.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def check_content_length(value: str | None) -> None:
    if value is None:
        return
    try:
        declared = int(value)
    except ValueError:
        raise ProxyError(
            400, "invalid_request", f"Content-Length: not a number (got {shown(value)})"
        ) from None
    if declared > MAX_REQUEST_BODY_BYTES:
        raise too_large(MAX_REQUEST_BODY_BYTES, declared)


class WebFetchBody(BaseModel):
    """What `cowork/web_fetch` takes. Unknown fields are allowed: the body is forwarded as
    the caller sent it, this model only checks it first."""

    model_config = ConfigDict(extra="allow", strict=True)

    url: str
    allowed_urls: list[str]

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        if not is_absolute_http_url(value):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value


# An absolute http(s) URL: scheme, optional userinfo, a host (name or [IP literal]),
# optional port, then anything printable in ASCII. The same text is the `url` pattern of
# `openapi.yaml`, and is applied the way JSON Schema applies a pattern (a search), so the
# proxy refuses exactly what its document calls invalid. `(?!\n)` stops Python's `$` from
# also matching before a final newline (ECMA's `$` never does).
WEB_FETCH_URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"
    r"(?:[A-Za-z0-9._~%!$&'()*+,;=:-]*@)?"
    r"(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]*)?"
    r"(?:[/?#][!-~]*)?$(?!\n)"
)
_WEB_FETCH_URL = re.compile(WEB_FETCH_URL_PATTERN)


def is_absolute_http_url(value: str) -> bool:
    return _WEB_FETCH_URL.search(value) is not None


def _field_problem(error: ErrorDetails) -> str:
    kind = error["type"]
    where = key_path(error["loc"]) or "body"
    got = error.get("input")
    quoted = shown(got) if isinstance(got, str) else json.dumps(got)[:80]
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind == "string_type":
        return f"{where}: must be a string (got {quoted})"
    if kind == "list_type":
        return f"{where}: must be an array of strings (got {quoted})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message} (got {quoted})"


def check_web_fetch_body(body: bytes) -> WebFetchBody:
    """A JSON object with an absolute http(s) `url` and an `allowed_urls` array of strings."""
    hint = 'send {"url": "https://...", "allowed_urls": ["https://..."]}'
    if not body.strip():
        raise ProxyError(400, "invalid_body", f"body: empty; {hint}")
    try:
        payload: Any = json.loads(body, parse_int=json_int)
    except UnicodeDecodeError:
        raise ProxyError(400, "invalid_body", f"body: not UTF-8 JSON; {hint}") from None
    except RecursionError:
        raise ProxyError(400, "invalid_body", f"body: JSON nested too deeply; {hint}") from None
    except json.JSONDecodeError as exc:
        raise ProxyError(
            400, "invalid_body", f"body: not valid JSON ({exc.msg} at position {exc.pos}); {hint}"
        ) from None
    if not isinstance(payload, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(payload), "")
        kind = kind or ("null" if payload is None else "a number")
        raise ProxyError(400, "invalid_body", f"body: must be a JSON object, got {kind}; {hint}")
    try:
        return WebFetchBody.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(_field_problem(error) for error in exc.errors())
        raise ProxyError(400, "invalid_body", problems) from None


HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# Never forwarded upstream besides the hop-by-hop ones: the client library sets Host for the
# upstream's address and Content-Length for the body it sends; the body has already been read
# in full, so a `100-continue` expectation means nothing any more.
REQUEST_ONLY_DROPPED = frozenset({"host", "content-length", "expect"})


_REQUEST_DROPPED = HOP_BY_HOP | REQUEST_ONLY_DROPPED


def _dropped(headers: MultiMapping[str], always: frozenset[str]) -> frozenset[str]:
    """`always`, plus the header names a `Connection` header lists (hop-by-hop too)."""
    values = headers.getall("Connection", ())
    if not values:  # the usual request: nothing to parse
        return always
    if len(values) == 1 and values[0].lower() == "keep-alive":  # the usual answer
        return always  # `keep-alive` is hop-by-hop already
    return always | {
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    }


def _kept(headers: MultiMapping[str], dropped: frozenset[str]) -> CIMultiDict[str]:
    # Copy, then delete what must go: the copy and the lookups run in C, where a filter
    # would call into Python for every header (this runs twice per proxied request).
    kept = CIMultiDict(headers)
    for name in dropped:
        if name in kept:
            del kept[name]
    if "\nproxy-" in "\n" + "\n".join(kept.keys()).lower():  # rare: look closer
        for name in [name for name in kept if name[:6].lower() == "proxy-"]:
            kept.popall(name, None)
    return kept


def forward_request_headers(headers: MultiMapping[str]) -> CIMultiDict[str]:
    """The caller's headers as they go upstream: all but the hop-by-hop ones (and those the
    caller's `Connection` names), `Host`, `Content-Length` and `Expect`. Repeated headers
    stay repeated, in order."""
    return _kept(headers, _dropped(headers, _REQUEST_DROPPED))


def response_headers(headers: MultiMapping[str]) -> CIMultiDict[str]:
    """The upstream's headers as they go back to the caller: all but the hop-by-hop ones
    (and those its `Connection` names). `Content-Length` and `Content-Encoding` stay: the
    body is relayed byte for byte, so they still describe it."""
    return _kept(headers, _dropped(headers, HOP_BY_HOP))


# Headers aiohttp's client would invent when the caller did not send them; a proxy must not.
SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def upstream_url(base_url: str, path: str, raw_query: str) -> URL:
    """`base_url` + a path built from validated parameters + the caller's query, byte for byte
    (`encoded=True`: nothing is re-quoted or normalized on the way)."""
    target = base_url.rstrip("/") + path + (f"?{raw_query}" if raw_query else "")
    return URL(target, encoded=True)


def raw_query(raw_path: str) -> str:
    return raw_path.partition("?")[2]
