"""Fuzzing the proxy's local checks with hypothesis: random methods, paths (encoded
separators, dot segments, unicode, very long segments), queries, headers and bodies.

Never a 5xx; a request the proxy should refuse (docs/proxy.md) never reaches the upstream,
and its answer is the proxy's JSON error; a valid one reaches the upstream exactly once. The
expected outcome is decided by an oracle written here from the docs, not from the proxy."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from monitor.simulator.model import stable_uuid
from tests.conftest import MakeProxy
from tests.support.config import make_config
from tests.support.upstream import ORG_A, ORG_B, TOKEN_A, Upstream

PROJECT_A = stable_uuid(ORG_A, "project", "0")
UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
PROJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The web_fetch `url` rule as the OpenAPI document states it (a JSON Schema pattern).
_DOCUMENT = yaml.safe_load(resources.files("monitor").joinpath("openapi.yaml").read_text())
HTTP_URL = re.compile(
    _DOCUMENT["components"]["schemas"]["WebFetchRequest"]["properties"]["url"]["pattern"]
)
ENCODED_SEPARATOR = re.compile(r"%(2f|2e|5c)", re.IGNORECASE)
LIMIT = 64 * 1024

# Routes as (method, pattern over the decoded path); segments are what aiohttp matches.
ROUTES = {
    "usage": ("GET", re.compile(r"/api/organizations/(?P<org>[^/{}]+)/usage")),
    "project": ("GET", re.compile(r"/api/organizations/(?P<org>[^/{}]+)/projects/(?P<p>[^/{}]+)")),
    "project_docs": (
        "GET",
        re.compile(r"/api/organizations/(?P<org>[^/{}]+)/projects/(?P<p>[^/{}]+)/docs"),
    ),
    "project_files": (
        "GET",
        re.compile(r"/api/organizations/(?P<org>[^/{}]+)/projects/(?P<p>[^/{}]+)/files"),
    ),
    "memory": ("GET", re.compile(r"/api/organizations/(?P<org>[^/{}]+)/memory")),
    "web_fetch": ("POST", re.compile(r"/api/organizations/(?P<org>[^/{}]+)/cowork/web_fetch")),
    "organizations": ("GET", re.compile(r"/api/organizations")),
    "account": ("GET", re.compile(r"/api/account")),
    "bootstrap": ("GET", re.compile(r"/api/bootstrap")),
}


@dataclass(frozen=True)
class Attempt:
    method: str
    path: str  # raw, percent-encoded as sent
    query: str
    headers: dict[str, str]
    body: bytes


def oracle(attempt: Attempt) -> str | None:
    """None if docs/proxy.md says the request is forwarded; else why it is refused."""
    raw = attempt.path
    if ENCODED_SEPARATOR.search(raw) or "\\" in raw or {".", ".."} & set(raw.split("/")):
        return "path climbs out of its route"
    path = unquote(raw, errors="replace")
    found = [(name, m) for name, (_, rx) in ROUTES.items() if (m := rx.fullmatch(path))]
    if not found:
        return "not a route"
    name, match = found[0]
    if attempt.method != ROUTES[name][0]:
        return "wrong method"
    params = match.groupdict()
    if "org" in params and not UUID.fullmatch(params["org"]):
        return "org_uuid"
    if "p" in params and not PROJECT_ID.fullmatch(params["p"]):
        return "project_id"
    if name == "memory":
        values = parse_qs(attempt.query, keep_blank_values=True).get("project_uuid", [])
        if len(values) != 1 or not UUID.fullmatch(values[0]):
            return "project_uuid"
    lowered = {k.lower(): v for k, v in attempt.headers.items()}
    if not (lowered.get("authorization", "").strip() or lowered.get("cookie", "").strip()):
        return "credentials"
    if len(attempt.body) > LIMIT:
        return "too large"
    if name == "web_fetch" and not _valid_web_fetch(attempt.body):
        return "web_fetch body"
    return None


def _valid_web_fetch(body: bytes) -> bool:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("url"), str)
        and HTTP_URL.search(payload["url"]) is not None
        and isinstance(payload.get("allowed_urls"), list)
        and all(isinstance(item, str) for item in payload["allowed_urls"])
    )


# -- strategies ---------------------------------------------------------------------------

_text_segment = st.text(max_size=40).map(lambda text: quote(text, safe=""))
_tricky = st.sampled_from(
    ["..", ".", "%2F", "%2f", "%2E%2E", "%5C", "%5c", "a%2Fb", "%00", "%", "%zz", "{x}", "é"]
)
_segment = st.one_of(
    st.just(ORG_A),
    st.just(ORG_A.upper()),
    st.just(ORG_B),
    st.just(PROJECT_A),
    st.from_regex(r"[A-Za-z0-9_-]{1,130}", fullmatch=True),
    st.text(alphabet="abcdef0123456789-", min_size=30, max_size=40),
    _tricky.map(lambda t: quote(t, safe="%") if t == "é" else t),
    _text_segment,
    st.just("x" * 1500),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from([*ROUTES, "free"]))
    if shape == "free":
        segments = draw(
            st.lists(
                st.one_of(_segment, st.sampled_from(["api", "organizations", "projects"])),
                max_size=8,
            )
        )
        return "/api/" + "/".join(segments) + draw(st.sampled_from(["", "/"]))
    template = {
        "usage": "/api/organizations/{org}/usage",
        "project": "/api/organizations/{org}/projects/{p}",
        "project_docs": "/api/organizations/{org}/projects/{p}/docs",
        "project_files": "/api/organizations/{org}/projects/{p}/files",
        "memory": "/api/organizations/{org}/memory",
        "web_fetch": "/api/organizations/{org}/cowork/web_fetch",
        "organizations": "/api/organizations",
        "account": "/api/account",
        "bootstrap": "/api/bootstrap",
    }[shape]
    return template.replace("{org}", draw(_segment)).replace("{p}", draw(_segment))


# Below aiohttp's 8190-byte request-line limit: past it the HTTP parser answers a plain 400
# before any handler runs, which is not what is fuzzed here.
_paths = paths().filter(lambda path: len(path) < 6000)


_query = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(
            st.sampled_from(["project_uuid", "project_uuid", "x", "", "limit"]),
            st.one_of(st.just(PROJECT_A), st.just(ORG_A), st.text(max_size=20)),
        ),
        max_size=3,
    ).map(lambda pairs: "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in pairs)),
)
_header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_headers = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.one_of(
            st.just(f"Bearer {TOKEN_A}"), st.just(""), st.just("   "), _header_value
        ),
        "Cookie": st.one_of(st.just("sessionKey=abc"), st.just(""), _header_value),
        "Connection": st.sampled_from(["keep-alive", "X-Fuzz-A", "close, X-Fuzz-B"]),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "x/y; a=b"]),
        "Accept-Encoding": st.sampled_from(["gzip", "identity", "br, deflate"]),
        "X-Fuzz-A": _header_value,
        "X-Fuzz-B": _header_value,
        "Proxy-Authorization": _header_value,
    },
)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_web_fetch = st.fixed_dictionaries(
    {},
    optional={
        "url": st.one_of(
            st.just("https://example.com/doc"),
            st.just("http://"),
            st.just("ftp://example.com/"),
            st.just("https://example.com/a b"),
            _json_value,
        ),
        "allowed_urls": st.one_of(
            st.just(["https://example.com"]), st.lists(_json_value, max_size=3), _json_value
        ),
        "extra": _json_value,
    },
).map(lambda body: json.dumps(body).encode())
_body = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    _json_value.map(lambda value: json.dumps(value).encode()),
    _web_fetch,
    st.just(
        b'{"url": "https://example.com/x", "allowed_urls": [], "pad": "' + b"x" * LIMIT + b'"}'
    ),
)
_method = st.sampled_from(
    ["GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "PROPFIND"]
)
attempts = st.builds(
    Attempt, method=_method, path=_paths, query=_query, headers=_headers, body=_body
)


# -- the test --------------------------------------------------------------------------------


# Generated cases look for crashes, not for lines: run untraced (coverage slows them 2x).
@pytest.mark.untraced
async def test_random_requests_never_500_and_never_reach_the_upstream_unless_valid(
    upstream: Upstream, make_proxy: MakeProxy
) -> None:
    client = await make_proxy(make_config(upstream.url))
    base = str(client.make_url("")).rstrip("/")
    loop = asyncio.get_running_loop()
    seen: dict[str, int] = {"forwarded": 0, "refused": 0}

    async def send(attempt: Attempt) -> tuple[int, str, bytes, list[object]]:
        upstream.sim.clear_requests()
        target = base + attempt.path + (f"?{attempt.query}" if attempt.query else "")
        async with client.session.request(
            attempt.method,
            URL(target, encoded=True),
            headers=attempt.headers,
            data=attempt.body or None,
            skip_auto_headers=["Content-Type"],
            allow_redirects=False,
        ) as response:
            body = await response.read()
        return response.status, response.content_type, body, list(upstream.sim.requests)

    # Hypothesis drives a synchronous test in a worker thread (so it can shrink a failure);
    # each example's request runs on this test's event loop, which is free meanwhile.
    @settings(
        max_examples=1000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(attempt=attempts)
    def check(attempt: Attempt) -> None:
        future = asyncio.run_coroutine_threadsafe(send(attempt), loop)
        status, content_type, body, reached = future.result(timeout=30)
        reason = oracle(attempt)
        assert status < 500, (attempt, status, body[:300])
        if reason is not None:
            assert reached == [], f"refused ({reason}) yet forwarded: {attempt}"
            seen["refused"] += 1
        else:
            assert len(reached) == 1, f"valid yet not forwarded once: {attempt}, {body[:300]!r}"
            seen["forwarded"] += 1
        if not reached:  # the proxy's own answer: a JSON error that says what is wrong
            assert status in {400, 401, 404, 405, 413}, (attempt, status)
            if attempt.method != "HEAD":
                assert content_type == "application/json", (attempt, body[:200])
                error = json.loads(body)["error"]
                assert isinstance(error["type"], str) and isinstance(error["message"], str)
                assert error["message"]

    await asyncio.to_thread(check)
    print(f"\nfuzz: {seen}")
    assert seen["forwarded"] > 0 and seen["refused"] > 0, seen
