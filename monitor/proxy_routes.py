"""The proxy's routes: their names (the `endpoint` label), methods and path templates;
which are usage reads; and what one request ended as (`Outcome`, for the metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

UNMATCHED = "unmatched"  # the `endpoint` label of a local 404 under /api/
CLIENT_CLOSED = 499  # nginx's code for "the client went away before an answer was sent"

ORG = "/api/organizations/{org_uuid}"
OAUTH = "/api/oauth"


@dataclass(frozen=True)
class Route:
    """One proxied endpoint: its name (the `endpoint` label), method and path template."""

    name: str
    method: str
    path: str

    # Cached: read on every proxied request, and a route never changes.
    @cached_property
    def has_org(self) -> bool:
        return "{org_uuid}" in self.path

    @cached_property
    def is_oauth(self) -> bool:
        """Forwarded to `[proxy] oauth_base_url` (Claude Code's own endpoints)."""
        return self.path.startswith(OAUTH + "/")

    @cached_property
    def reads_usage(self) -> bool:
        """A usage read: cached and shielded when those are on."""
        return self.name in USAGE_ROUTES

    def upstream_path(self, params: Mapping[str, str]) -> str:
        """The path with its (already validated) parameters filled in."""
        return self.path.format_map(params)


ROUTES: tuple[Route, ...] = (
    Route("usage", "GET", f"{ORG}/usage"),
    Route("project", "GET", f"{ORG}/projects/{{project_id}}"),
    Route("project_docs", "GET", f"{ORG}/projects/{{project_id}}/docs"),
    Route("project_files", "GET", f"{ORG}/projects/{{project_id}}/files"),
    Route("memory", "GET", f"{ORG}/memory"),
    Route("web_fetch", "POST", f"{ORG}/cowork/web_fetch"),
    Route("organizations", "GET", "/api/organizations"),
    Route("account", "GET", "/api/account"),
    Route("bootstrap", "GET", "/api/bootstrap"),
    Route("oauth_usage", "GET", f"{OAUTH}/usage"),
    Route("oauth_profile", "GET", f"{OAUTH}/profile"),
)
USAGE_ROUTES = frozenset({"usage", "oauth_usage"})
ROUTES_BY_NAME: Mapping[str, Route] = {route.name: route for route in ROUTES}


@dataclass
class Outcome:
    """What one request ended as, for the metrics: the status sent (499 until one is)."""

    code: int = CLIENT_CLOSED


# The `method` label: any other verb is counted as OTHER, so a scanner cannot grow the series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    upper = method.upper()
    return upper if upper in KNOWN_METHODS else "OTHER"
