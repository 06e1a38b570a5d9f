"""Schemathesis against the served app: every operation of `monitor/openapi.yaml`, with
generated valid and invalid requests. No 5xx, no answer the document does not allow, and
nothing the proxy should refuse (the README's proxy section) ever reaches the simulated
upstream."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from monitor.app import create_app
from monitor.proxy_routes import ROUTES
from monitor.proxy_rules import WEB_FETCH_URL_PATTERN, is_absolute_http_url, is_uuid
from monitor.simulator import RecordedRequest, Simulator, simulator_app
from monitor.simulator.model import stable_uuid
from tests.support.config import make_config
from tests.support.upstream import ORG_A, TOKEN_A, ServedInThread, standard_simulator

DOCUMENT = Path(str(resources.files("monitor").joinpath("openapi.yaml")))
schema = schemathesis.openapi.from_path(DOCUMENT)

# What is valid, as the document says it (JSON Schema applies a pattern as a search).
_COMPONENTS = schema.raw_schema["components"]
PROJECT_ID = re.compile(_COMPONENTS["parameters"]["ProjectId"]["schema"]["pattern"])
UUID = re.compile(_COMPONENTS["schemas"]["Uuid"]["pattern"])
URL = re.compile(_COMPONENTS["schemas"]["WebFetchRequest"]["properties"]["url"]["pattern"])
# A real project of org A in the simulator, so some generated cases get real answers.
PROJECT_A = stable_uuid(ORG_A, "project", "0")


@dataclass
class Served:
    """The app (no polling: the upstream's request log holds proxied requests only) and the
    simulator, on 127.0.0.1, served from a background thread."""

    base_url: str
    sim: Simulator
    thread: ServedInThread

    def upstream_requests(self) -> list[RecordedRequest]:
        """What reached the upstream since the last call."""

        def snapshot() -> list[RecordedRequest]:
            found = list(self.sim.requests)
            self.sim.clear_requests()
            return found

        return self.thread.call(snapshot)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    sim = standard_simulator()
    with ServedInThread() as thread:
        upstream = thread.serve(lambda: simulator_app(sim))
        config = make_config(upstream, upstream={"timeout_seconds": 5})
        yield Served(thread.serve(lambda: create_app(config, poll=False)), sim, thread)


_turn = itertools.count()
# (generation mode, status) of every generated case, for the check that both kinds ran.
SEEN: Counter[tuple[str, int]] = Counter()


def _aim_at_known_org(case: Any) -> None:
    """Every other case whose generated org/project are valid goes to org A and one of its
    projects, so 200 answers (and their schemas) are exercised too, not only 404s."""
    if next(_turn) % 2:
        return
    params = case.path_parameters or {}
    if isinstance(params.get("org_uuid"), str) and UUID.search(params["org_uuid"]):
        params["org_uuid"] = ORG_A
        if isinstance(params.get("project_id"), str) and PROJECT_ID.search(params["project_id"]):
            params["project_id"] = PROJECT_A
        query = case.query if isinstance(case.query, dict) else {}
        if isinstance(query.get("project_uuid"), str) and UUID.search(query["project_uuid"]):
            query["project_uuid"] = PROJECT_A


def _invalid_upstream_request(request: RecordedRequest) -> str | None:
    """What makes a request that reached the upstream one the proxy should have refused."""
    parts = request.path.split("/")
    if request.header("Authorization") is None and request.header("Cookie") is None:
        return "no credentials"
    if request.path.startswith("/api/organizations/"):
        if not UUID.search(parts[3]):
            return f"org_uuid {parts[3]!r}"
        if len(parts) > 5 and parts[4] == "projects" and not PROJECT_ID.search(parts[5]):
            return f"project_id {parts[5]!r}"
        if parts[4:] == ["memory"]:
            values = parse_qs(request.query_string).get("project_uuid", [])
            if len(values) != 1 or not UUID.search(values[0]):
                return f"memory query {request.query_string!r}"
        if parts[4:] == ["cowork", "web_fetch"]:
            try:
                body = json.loads(request.body)
            except ValueError:
                return "web_fetch body is not JSON"
            if not (
                isinstance(body, dict)
                and isinstance(body.get("url"), str)
                and URL.search(body["url"])
                and isinstance(body.get("allowed_urls"), list)
                and all(isinstance(item, str) for item in body["allowed_urls"])
            ):
                return f"web_fetch body {request.body[:100]!r}"
    if len(request.body) > 64 * 1024:
        return "body over 64 KiB"
    return None


# Generated cases look for crashes, not for lines: run untraced (coverage slows them 2x).
@pytest.mark.untraced
@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_proxy_conforms_to_its_openapi_document(case: Any, served: Served) -> None:
    _aim_at_known_org(case)
    headers = {"Authorization": f"Bearer {TOKEN_A}"}
    response = case.call(base_url=served.base_url, headers=headers, timeout=10)
    # Every check but "valid data gets a 2xx": a valid request is forwarded, and what the
    # upstream makes of it (404 for an unknown org, 400 for a URL it cannot parse) is its
    # answer, relayed as it came.
    case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, response.text
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    SEEN[(mode, response.status_code)] += 1
    for request in served.upstream_requests():
        problem = _invalid_upstream_request(request)
        assert problem is None, f"an invalid request reached the upstream: {problem}"
    if response.status_code >= 400:
        error = response.json().get("error")
        assert isinstance(error, dict) and isinstance(error.get("message"), str)


def test_generated_cases_were_both_valid_and_invalid() -> None:
    """Runs after the generated cases (same module, in order): they reached the upstream and
    got its answers, and they were refused locally."""
    if not SEEN:
        pytest.skip("the generated cases did not run in this session")
    assert SEEN[("positive", 200)] > 0, SEEN
    assert SEEN[("negative", 400)] > 0, SEEN
    assert SEEN[("negative", 405)] > 0, SEEN


def test_document_covers_every_route() -> None:
    operations = {
        (method.upper(), path)
        for path, item in schema.raw_schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert operations == {(route.method, route.path) for route in ROUTES}
    ids = {
        item[method]["operationId"]
        for item in schema.raw_schema["paths"].values()
        for method in item
    }
    assert ids == {route.name for route in ROUTES}
    assert uuid.UUID(PROJECT_A)


def test_document_patterns_are_the_proxys_rules() -> None:
    """The proxy refuses exactly what the document calls invalid."""
    assert URL.pattern == WEB_FETCH_URL_PATTERN
    for value in ("http://", "https://a b", "https://a\n", "ftp://a", "https://:1", "//a"):
        assert not is_absolute_http_url(value) and not URL.search(value)
    for value in ("https://a", "HTTP://u:p@[::1]:8/x?y#z", "http://a.b/%20?q=1"):
        assert is_absolute_http_url(value) and URL.search(value)
    for value in (ORG_A, ORG_A.upper(), ORG_A + "\n", ORG_A[1:], "{" + ORG_A + "}"):
        assert is_uuid(value) == bool(UUID.search(value))
    assert not PROJECT_ID.search("abc\n") and not PROJECT_ID.search("a" * 129)
