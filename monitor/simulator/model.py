"""Orgs, accounts and projects, and the JSON the non-usage routes answer with. Pure."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from monitor.simulator.errors import ApiError
from monitor.simulator.shapes import JSONObject, JSONValue, Shape, format_timestamp
from monitor.simulator.windows import ExtraSpec, WindowState

# Fixed namespace so project and account ids are stable across runs for the same org.
_NAMESPACE = uuid.UUID("5d0c8a52-7f3e-4c1b-9a6d-2e4f8b1c3d5e")

PLAN_CAPABILITIES: Mapping[str, tuple[str, ...]] = {
    "free": ("chat",),
    "pro": ("chat", "claude_pro"),
    "max": ("chat", "claude_max"),
    "team": ("chat", "raven"),
    "enterprise": ("chat", "raven", "enterprise"),
}


@dataclass(frozen=True)
class SimDoc:
    uuid: str
    file_name: str
    content: str
    created_at: float


@dataclass(frozen=True)
class SimFile:
    file_uuid: str
    file_name: str
    file_kind: str
    size_bytes: int
    created_at: float


@dataclass(frozen=True)
class SimProject:
    uuid: str
    name: str
    description: str
    created_at: float
    docs: tuple[SimDoc, ...] = ()
    files: tuple[SimFile, ...] = ()
    memory: str = ""
    memory_updated_at: float | None = None


@dataclass
class SimOrg:
    """One organization as the upstream sees it; windows and extra change over time."""

    uuid: str
    name: str
    plan: str
    shape: Shape
    windows: dict[str, WindowState]
    extra: ExtraSpec | None
    created_at: float
    projects: dict[str, SimProject] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class SimAccount:
    uuid: str
    org_uuids: tuple[str, ...]
    token: str | None = None
    session_key: str | None = None
    expired: bool = False


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


_PROJECT_SEEDS: tuple[tuple[str, str, str], ...] = (
    ("Onboarding handbook", "Everything a new hire reads in week one.", ""),
    (
        "Billing service",
        "Design notes and runbooks for the billing service.",
        "The team prefers Python 3.11 and aiohttp. Invoices are stored in cents.",
    ),
    (
        "Research notes",
        "Papers and summaries.",
        "Summaries should cite the section they come from.",
    ),
)


def default_projects(org_uuid: str, created_at: float) -> dict[str, SimProject]:
    """A few plausible projects, identical for the same org uuid on every run."""
    projects: dict[str, SimProject] = {}
    for index, (name, description, memory) in enumerate(_PROJECT_SEEDS):
        project_uuid = stable_uuid(org_uuid, "project", str(index))
        made = created_at - (len(_PROJECT_SEEDS) - index) * 86400.0
        docs = tuple(
            SimDoc(
                uuid=stable_uuid(project_uuid, "doc", str(n)),
                file_name=f"{name.lower().replace(' ', '_')}_{n}.md",
                content=f"# {name}, part {n + 1}\n\nSimulated document text.\n",
                created_at=made + n * 60.0,
            )
            for n in range(2)
        )
        files = tuple(
            SimFile(
                file_uuid=stable_uuid(project_uuid, "file", str(n)),
                file_name=("diagram.png", "report.pdf")[n],
                file_kind=("image", "document")[n],
                size_bytes=48213 + 1000 * n,
                created_at=made + 120.0 + n * 60.0,
            )
            for n in range(index % 2 + 1)
        )
        projects[project_uuid] = SimProject(
            uuid=project_uuid,
            name=name,
            description=description,
            created_at=made,
            docs=docs,
            files=files,
            memory=memory,
            memory_updated_at=made + 3600.0 if memory else None,
        )
    return projects


def project_json(project: SimProject) -> JSONObject:
    return {
        "uuid": project.uuid,
        "name": project.name,
        "description": project.description,
        "is_private": True,
        "is_starred": False,
        "prompt_template": "",
        "created_at": format_timestamp(project.created_at),
        "updated_at": format_timestamp(project.created_at),
        "archived_at": None,
        "docs_count": len(project.docs),
        "files_count": len(project.files),
    }


def docs_json(project: SimProject) -> list[JSONValue]:
    return [
        {
            "uuid": doc.uuid,
            "file_name": doc.file_name,
            "content": doc.content,
            "created_at": format_timestamp(doc.created_at),
            "project_uuid": project.uuid,
        }
        for doc in project.docs
    ]


def files_json(project: SimProject) -> list[JSONValue]:
    return [
        {
            "file_uuid": item.file_uuid,
            "file_name": item.file_name,
            "file_kind": item.file_kind,
            "size_bytes": item.size_bytes,
            "created_at": format_timestamp(item.created_at),
        }
        for item in project.files
    ]


def memory_json(project: SimProject) -> JSONObject:
    updated = project.memory_updated_at
    return {
        "memory": project.memory,
        "controls": None,
        "updated_at": None if updated is None else format_timestamp(updated),
    }


def org_json(org: SimOrg) -> JSONObject:
    return {"uuid": org.uuid, "name": org.name, "capabilities": list(org.capabilities)}


def organizations_json(orgs: Iterable[SimOrg]) -> list[JSONValue]:
    return [org_json(org) | {"created_at": format_timestamp(org.created_at)} for org in orgs]


def account_json(account: SimAccount, orgs: Iterable[SimOrg]) -> JSONObject:
    return {
        "uuid": account.uuid,
        "memberships": [{"organization": org_json(org)} for org in orgs],
    }


def profile_json(account: SimAccount, org: SimOrg) -> JSONObject:
    """`/api/oauth/profile`: the token's account and the organization it acts for."""
    name = account.uuid.split("-")[0]
    return {
        "account": {
            "uuid": account.uuid,
            "email_address": f"user-{name}@example.com",
            "full_name": f"Simulated user {name}",
            "has_claude_max": org.plan == "max",
            "has_claude_pro": org.plan == "pro",
        },
        "organization": {
            "uuid": org.uuid,
            "name": org.name,
            "organization_type": f"claude_{org.plan}",
            "billing_type": "stripe_subscription",
            "rate_limit_tier": f"default_claude_{org.plan}",
        },
    }


def parse_web_fetch(body: object) -> tuple[str, list[str]]:
    """Validate a web_fetch body; ValueError names the offending field."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object with url and allowed_urls")
    url = body.get("url")
    if not isinstance(url, str) or not _is_http_url(url):
        raise ValueError("url: must be an absolute http or https URL")
    allowed = body.get("allowed_urls")
    if not isinstance(allowed, list) or not all(isinstance(item, str) for item in allowed):
        raise ValueError("allowed_urls: must be an array of strings")
    return url, list(allowed)


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def url_allowed(url: str, allowed_urls: Iterable[str]) -> bool:
    """Same scheme, same host and port, and the allowed path is a whole-segment prefix."""
    target = urlsplit(url)
    for candidate in allowed_urls:
        if not _is_http_url(candidate):
            continue
        allowed = urlsplit(candidate)
        if (allowed.scheme, allowed.netloc.lower()) != (target.scheme, target.netloc.lower()):
            continue
        prefix = allowed.path.rstrip("/")
        if not prefix or target.path == prefix or target.path.startswith(prefix + "/"):
            return True
    return False


def web_fetch_json(url: str) -> JSONObject:
    host = urlsplit(url).hostname or ""
    return {
        "url": url,
        "destination_url": url,
        "title": host,
        "content_type": "text/html",
        "text": f"Simulated page for {url}",
        "links": [f"https://{host}/"],
    }


@dataclass(frozen=True)
class Credential:
    kind: str  # "bearer" or "cookie", for the request log and error choice
    value: str


def read_credential(headers: Mapping[str, str]) -> Credential | ApiError:
    """The credential a request carries, or the error upstream gives for a malformed one."""
    authorization = headers.get("Authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return ApiError.for_status(401, "Invalid authorization header")
        if not token.strip():
            # The real API rate-limits an empty token instead of rejecting it.
            return ApiError.for_status(429, headers={"retry-after": "0"})
        return Credential("bearer", token.strip())
    cookie_header = headers.get("Cookie")
    if cookie_header is not None:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(cookie_header)
        except CookieError:
            return _session_invalid()
        morsel = cookie.get("sessionKey")
        if morsel is not None:
            return Credential("cookie", morsel.value)
    return ApiError.for_status(401, "Missing authentication credentials")


def _session_invalid() -> ApiError:
    return ApiError(
        403, "permission_error", "account_session_invalid", code="account_session_invalid"
    )


@dataclass(frozen=True)
class IssuedToken:
    """A bearer token issued for an account that stops working at `expires_at`, as an
    OAuth access token does."""

    token: str = field(repr=False)
    account_uuid: str
    expires_at: float


def token_expired() -> ApiError:
    return ApiError(401, "authentication_error", "OAuth token has expired.", code="token_expired")


def authenticate(
    headers: Mapping[str, str],
    accounts: Iterable[SimAccount],
    issued: Mapping[str, IssuedToken] | None = None,
    now: float = 0.0,
) -> SimAccount | ApiError:
    """The account a request's credential belongs to (its static token or session key,
    or a token issued for it that has not expired at `now`), or the upstream's refusal."""
    credential = read_credential(headers)
    if isinstance(credential, ApiError):
        return credential
    token = (issued or {}).get(credential.value) if credential.kind == "bearer" else None
    owner = (
        None if token is None else next((a for a in accounts if a.uuid == token.account_uuid), None)
    )
    if token is not None and owner is not None:
        return token_expired() if token.expires_at <= now else owner
    for account in accounts:
        if credential.kind == "bearer" and account.token == credential.value:
            if account.expired:
                return ApiError.for_status(401, "OAuth token has expired.")
            return account
        if credential.kind == "cookie" and account.session_key == credential.value:
            return _session_invalid() if account.expired else account
    if credential.kind == "cookie":
        return _session_invalid()
    return ApiError.for_status(401, "Invalid bearer token")
