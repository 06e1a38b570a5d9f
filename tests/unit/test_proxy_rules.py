"""The proxy's pure rules: routes, local checks, header filters, passive-refresh decoding."""

from __future__ import annotations

import gzip
import json
import logging
import zlib

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from monitor.access_log import ProxyAccessLogger
from monitor.passive_refresh import UsageTee, decode_usage
from monitor.proxy_errors import ProxyError, method_not_allowed, not_found
from monitor.proxy_routes import ROUTES, ROUTES_BY_NAME, method_label
from monitor.proxy_rules import (
    MAX_REQUEST_BODY_BYTES,
    check_content_length,
    check_credentials,
    check_memory_query,
    check_path_params,
    check_raw_path,
    check_web_fetch_body,
    forward_request_headers,
    raw_query,
    response_headers,
    upstream_url,
)
from monitor.upstream import MAX_BODY_BYTES
from tests.support.upstream import ORG_A, fixture_text

PROJECT = "0f3e2d1c-b4a5-4678-9abc-def012345678"


def test_route_table_is_the_documented_table() -> None:
    assert [(r.name, r.method, r.path) for r in ROUTES] == [
        ("usage", "GET", "/api/organizations/{org_uuid}/usage"),
        ("project", "GET", "/api/organizations/{org_uuid}/projects/{project_id}"),
        ("project_docs", "GET", "/api/organizations/{org_uuid}/projects/{project_id}/docs"),
        ("project_files", "GET", "/api/organizations/{org_uuid}/projects/{project_id}/files"),
        ("memory", "GET", "/api/organizations/{org_uuid}/memory"),
        ("web_fetch", "POST", "/api/organizations/{org_uuid}/cowork/web_fetch"),
        ("organizations", "GET", "/api/organizations"),
        ("account", "GET", "/api/account"),
        ("bootstrap", "GET", "/api/bootstrap"),
        ("oauth_usage", "GET", "/api/oauth/usage"),
        ("oauth_profile", "GET", "/api/oauth/profile"),
    ]


def test_upstream_path_fills_validated_parameters() -> None:
    params = {"org_uuid": ORG_A, "project_id": "proj_1"}
    assert (
        ROUTES_BY_NAME["project_docs"].upstream_path(params)
        == f"/api/organizations/{ORG_A}/projects/proj_1/docs"
    )
    assert ROUTES_BY_NAME["account"].upstream_path({}) == "/api/account"
    assert ROUTES_BY_NAME["usage"].has_org
    assert not ROUTES_BY_NAME["bootstrap"].has_org


@pytest.mark.parametrize(
    "raw_path",
    [
        f"/api/organizations/{ORG_A}%2Fx/usage",
        f"/api/organizations/{ORG_A}/projects/a%2fb",
        f"/api/organizations/{ORG_A}/projects/%2E%2E/usage",
        f"/api/organizations/{ORG_A}/projects/%2e",
        f"/api/organizations/{ORG_A}/projects/a%5Cb",
        f"/api/organizations/{ORG_A}/projects/../../../metrics",
        f"/api/organizations/{ORG_A}/./usage",
        "/api/organizations/..",
        "/api/organizations/a\\b",
    ],
)
def test_raw_path_with_encoded_separators_or_dot_segments_is_refused(raw_path: str) -> None:
    with pytest.raises(ProxyError) as caught:
        check_raw_path(raw_path)
    assert (caught.value.status, caught.value.type) == (400, "invalid_path")


@pytest.mark.parametrize(
    "raw_path",
    [
        f"/api/organizations/{ORG_A}/usage",
        f"/api/organizations/{ORG_A}/projects/my.project.v2x",  # a dot inside a segment
        f"/api/organizations/{ORG_A}/memory?project_uuid={PROJECT}&next=%2F..%2F",
    ],
)
def test_plain_paths_pass_and_the_query_is_not_a_path(raw_path: str) -> None:
    check_raw_path(raw_path)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"org_uuid": "acme"}, "org_uuid"),
        ({"org_uuid": ORG_A[:-1]}, "org_uuid"),
        ({"org_uuid": f"{{{ORG_A}}}"}, "org_uuid"),
        ({"org_uuid": f"urn:uuid:{ORG_A}"}, "org_uuid"),
        ({"org_uuid": ORG_A, "project_id": "a.b"}, "project_id"),
        ({"org_uuid": ORG_A, "project_id": "x" * 129}, "project_id"),
        ({"org_uuid": ORG_A, "project_id": "a b"}, "project_id"),
    ],
)
def test_bad_path_parameters_are_400_naming_the_parameter(
    params: dict[str, str], named: str
) -> None:
    with pytest.raises(ProxyError) as caught:
        check_path_params(params)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_parameter"
    assert caught.value.message.startswith(f"{named}:")


def test_good_path_parameters_pass() -> None:
    check_path_params({"org_uuid": ORG_A.upper(), "project_id": PROJECT})
    check_path_params({"org_uuid": ORG_A, "project_id": "proj_Z-9" + "x" * 120})


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ([], "required query parameter is missing"),
        (["nope"], "not a UUID"),
        ([PROJECT, PROJECT], "given 2 times"),
    ],
)
def test_memory_needs_exactly_one_project_uuid(values: list[str], fragment: str) -> None:
    with pytest.raises(ProxyError) as caught:
        check_memory_query(values)
    assert caught.value.status == 400
    assert caught.value.message.startswith("project_uuid:")
    assert fragment in caught.value.message


def test_memory_with_a_project_uuid_passes() -> None:
    check_memory_query([PROJECT])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Cookie": "  "}, {"X-Api-Key": "k"}],
)
def test_no_credential_is_401(headers: dict[str, str]) -> None:
    with pytest.raises(ProxyError) as caught:
        check_credentials(CIMultiDict(headers))
    assert (caught.value.status, caught.value.type) == (401, "missing_credentials")
    assert "Authorization" in caught.value.message
    assert "Cookie" in caught.value.message


@pytest.mark.parametrize(
    "headers", [{"authorization": "Bearer t"}, {"Cookie": "sessionKey=k"}, {"COOKIE": "a=b"}]
)
def test_either_credential_is_enough(headers: dict[str, str]) -> None:
    check_credentials(CIMultiDict(headers))


def test_content_length_over_64_kib_is_413_and_garbage_is_400() -> None:
    check_content_length(None)
    check_content_length(str(MAX_REQUEST_BODY_BYTES))
    with pytest.raises(ProxyError) as too_big:
        check_content_length(str(MAX_REQUEST_BODY_BYTES + 1))
    assert (too_big.value.status, too_big.value.type) == (413, "request_too_large")
    assert "64 KiB" in too_big.value.message
    with pytest.raises(ProxyError) as garbage:
        check_content_length("12abc")
    assert garbage.value.status == 400
    assert "Content-Length" in garbage.value.message


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (b"", ["body: empty"]),
        (b"{not json", ["body: not valid JSON"]),
        (b"\xff\xfe\x00garbage", ["body: not"]),
        (b"[1, 2]", ["must be a JSON object, got an array"]),
        (b'"https://example.com"', ["got a string"]),
        (b"null", ["got null"]),
        (b"{}", ["url: required field is missing", "allowed_urls: required field is missing"]),
        (b'{"url": 5, "allowed_urls": []}', ["url: must be a string (got 5)"]),
        (
            b'{"url": "example.com/doc", "allowed_urls": []}',
            ["url: must be an absolute http:// or https:// URL", "'example.com/doc'"],
        ),
        (b'{"url": "ftp://example.com/x", "allowed_urls": []}', ["url: must be an absolute"]),
        (b'{"url": "https://", "allowed_urls": []}', ["url: must be an absolute"]),
        (
            b'{"url": "https://example.com", "allowed_urls": "https://example.com"}',
            ["allowed_urls: must be an array of strings"],
        ),
        (
            b'{"url": "https://example.com", "allowed_urls": ["https://a", 3]}',
            ["allowed_urls[1]: must be a string (got 3)"],
        ),
    ],
)
def test_bad_web_fetch_bodies_are_400_naming_the_field(body: bytes, fragments: list[str]) -> None:
    with pytest.raises(ProxyError) as caught:
        check_web_fetch_body(body)
    assert (caught.value.status, caught.value.type) == (400, "invalid_body")
    for fragment in fragments:
        assert fragment in caught.value.message


def test_a_good_web_fetch_body_keeps_unknown_fields() -> None:
    body = b'{"url": "https://example.com/doc", "allowed_urls": ["https://example.com"], "x": 1}'
    parsed = check_web_fetch_body(body)
    assert parsed.url == "https://example.com/doc"
    assert parsed.allowed_urls == ["https://example.com"]
    assert parsed.model_extra == {"x": 1}


def test_error_body_is_the_documented_envelope() -> None:
    error = method_not_allowed(ROUTES_BY_NAME["web_fetch"], "GET")
    assert json.loads(error.body()) == {
        "error": {
            "type": "method_not_allowed",
            "message": "GET is not allowed on /api/organizations/{org_uuid}/cowork/web_fetch "
            "(route web_fetch); use POST",
        }
    }
    assert error.headers == {"Allow": "POST"}
    response = error.response()
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert response.content_type == "application/json"


def test_not_found_lists_the_routes_and_bounds_the_method() -> None:
    error = not_found("BREW", "/api/teapot")
    assert (error.status, error.type) == (404, "not_found")
    assert error.message.startswith("OTHER '/api/teapot' is not a proxied route")
    assert "GET /api/bootstrap" in error.message


def test_method_label_is_bounded() -> None:
    assert method_label("get") == "GET"
    assert method_label("POST") == "POST"
    assert method_label("PROPFIND") == "OTHER"


# Header table: (header, value, forwarded upstream?)
REQUEST_HEADERS = [
    ("Authorization", "Bearer caller-token", True),
    ("Cookie", "sessionKey=caller-key", True),
    ("anthropic-beta", "oauth-2025-04-20", True),
    ("User-Agent", "claude-code/2.0.1", True),
    ("Accept-Encoding", "gzip", True),
    ("Accept", "application/json", True),
    ("Content-Type", "application/json", True),
    ("X-Custom", "kept", True),
    ("Host", "127.0.0.1:4000", False),
    ("Content-Length", "12", False),
    ("Connection", "keep-alive, X-Hop", False),
    ("X-Hop", "named in Connection", False),
    ("Keep-Alive", "timeout=5", False),
    ("TE", "trailers", False),
    ("Trailer", "Expires", False),
    ("Transfer-Encoding", "chunked", False),
    ("Upgrade", "websocket", False),
    ("Proxy-Authorization", "Basic cHJveHk6cHJveHk=", False),
    ("Proxy-Connection", "keep-alive", False),
    ("Proxy-Whatever", "x", False),
    ("Expect", "100-continue", False),
]


def test_request_headers_table() -> None:
    headers = CIMultiDict((name, value) for name, value, _ in REQUEST_HEADERS)
    forwarded = forward_request_headers(headers)
    for name, value, kept in REQUEST_HEADERS:
        assert (forwarded.get(name) == value) is kept, name
        assert (name in forwarded) is kept, name


def test_repeated_request_headers_stay_repeated_in_order() -> None:
    headers = CIMultiDict([("Cookie", "a=1"), ("X-Id", "1"), ("Cookie", "b=2")])
    assert forward_request_headers(headers).getall("Cookie") == ["a=1", "b=2"]


RESPONSE_HEADERS = [
    ("Content-Type", "application/json", True),
    ("Content-Length", "170", True),
    ("Content-Encoding", "gzip", True),
    ("Retry-After", "3600", True),
    ("Set-Cookie", "a=1; Path=/", True),
    ("cf-mitigated", "challenge", True),
    ("Server", "cloudflare", True),
    ("Date", "Sat, 28 Nov 2026 21:33:51 GMT", True),
    ("Location", "https://claude.ai/login", True),
    ("Connection", "close, X-Upstream-Hop", False),
    ("X-Upstream-Hop", "1", False),
    ("Keep-Alive", "timeout=5", False),
    ("Transfer-Encoding", "chunked", False),
    ("Trailer", "Expires", False),
    ("Upgrade", "h2c", False),
    ("Proxy-Authenticate", "Basic", False),
]


def test_response_headers_table() -> None:
    headers = CIMultiDict((name, value) for name, value, _ in RESPONSE_HEADERS)
    headers.add("Set-Cookie", "b=2; Path=/")
    relayed = response_headers(headers)
    for name, value, kept in RESPONSE_HEADERS:
        assert (name in relayed) is kept, name
        if kept:
            assert relayed.getone(name) == value
    assert relayed.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_upstream_url_keeps_the_query_byte_for_byte() -> None:
    query = "project_uuid=ABC&a=1&a=2&b=%20x&c=%2F&d&e=%e2%9c%93"
    url = upstream_url("https://claude.ai/", f"/api/organizations/{ORG_A}/memory", query)
    assert url.raw_path_qs == f"/api/organizations/{ORG_A}/memory?{query}"
    assert url.host == "claude.ai"
    assert raw_query(f"/x?{query}") == query
    assert raw_query("/x") == ""


def test_upstream_url_keeps_a_base_path_prefix() -> None:
    url = upstream_url("http://10.0.0.1:8080/claude", "/api/account", "")
    assert str(url) == "http://10.0.0.1:8080/claude/api/account"


USAGE = fixture_text("usage_seed_shape.json").encode()


def test_decode_usage_undoes_gzip_and_deflate() -> None:
    plain = decode_usage(USAGE, None)
    assert plain.windows
    assert decode_usage(gzip.compress(USAGE), "gzip") == plain
    assert decode_usage(zlib.compress(USAGE), "deflate") == plain
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_usage(raw.compress(USAGE) + raw.flush(), "Deflate") == plain
    assert decode_usage(USAGE, "identity") == plain


@pytest.mark.parametrize(
    ("body", "encoding", "fragment"),
    [
        (USAGE, "br", "'br' is not decoded"),
        (b"[1, 2]", None, "not an object"),
        (b"<html>", None, "Expecting value"),
        (b"not gzip", "gzip", "cannot decompress"),
        (gzip.compress(b" " * (MAX_BODY_BYTES + 10)), "gzip", "over the 1 MiB limit"),
    ],
)
def test_decode_usage_refuses_what_it_cannot_use(
    body: bytes, encoding: str | None, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        decode_usage(body, encoding)


def test_usage_tee_collects_up_to_its_limit() -> None:
    tee = UsageTee(limit=10)
    tee.feed(b"12345")
    tee.feed(b"678")
    assert tee.body() == b"12345678"
    tee.feed(b"abc")
    assert tee.overflowed
    tee.feed(b"d")
    with pytest.raises(ValueError, match="over the 10 byte limit"):
        tee.body()


def test_access_logger_never_prints_credentials(caplog: pytest.LogCaptureFixture) -> None:
    secret = "top-secret-value-123"
    request = make_mocked_request(
        "GET",
        f"/api/organizations/{ORG_A}/usage?x=1",
        headers={
            "Authorization": f"Bearer {secret}",
            "Cookie": f"sessionKey={secret}",
            "User-Agent": "curl/8.5.0",
        },
    )
    logger = logging.getLogger("test.access")
    access = ProxyAccessLogger(logger, "%a %{Authorization}i %{Cookie}i")
    with caplog.at_level(logging.DEBUG):
        access.log(request, web.Response(status=200, body=b"{}"), 0.25)
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert f'"GET /api/organizations/{ORG_A}/usage?x=1 HTTP/1.1" 200' in line
    assert '"curl/8.5.0"' in line
    assert secret not in line
