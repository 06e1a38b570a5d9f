"""The nginx configs of the benchmark: the static upstream's body survives nginx's quoting
(the exact bytes are checked against a real nginx in tests/system/test_bench_nginx.py),
and the reference proxy is configured as docs/benchmarks.md says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.nginx import DOLLAR_VARIABLE, proxy_config, quoted, static_config
from bench.upstream import PAYLOAD_CONTENT_TYPE, usage_payload

# What nginx makes of a double-quoted string (ngx_conf_file.c), then `return`'s variables
# (only ours): the reading these configs rely on, written out independently of `quoted`.
_NGINX_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def nginx_reads(token: str) -> str:
    assert token.startswith('"') and token.endswith('"')
    inner, out, i = token[1:-1], [], 0
    while i < len(inner):
        char = inner[i]
        if char == '"':
            raise AssertionError(f"unescaped quote at {i}: nginx would end the string there")
        if char == "\\" and i + 1 < len(inner) and inner[i + 1] in _NGINX_ESCAPES:
            out.append(_NGINX_ESCAPES[inner[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    text = "".join(out)
    variables = set(re.findall(r"\$\{?([A-Za-z_0-9]*)", text))
    assert variables <= {DOLLAR_VARIABLE}, f"nginx would expand {variables}"
    return text.replace("${" + DOLLAR_VARIABLE + "}", "$")


@pytest.mark.parametrize(
    "text",
    [
        '{"a": "b"}',
        'quote " and \\" and \\\\ backslashes',
        "dollars: $x ${y} $ $$ end$",
        "single ' quote; semicolon { braces } # hash",
        "control \n \r \t characters, and é ünïcode",
        "",
    ],
)
def test_quoted_reads_back_as_the_original(text: str) -> None:
    assert nginx_reads(quoted(text)) == text


def test_the_usage_payload_round_trips() -> None:
    payload = usage_payload().decode()
    assert nginx_reads(quoted(payload)) == payload


def test_static_config_returns_the_body_with_its_content_type(tmp_path: Path) -> None:
    body = b'{"five_hour": {"utilization": 1.5, "note": "$HOME \\" \'"}}'
    text = static_config(tmp_path, 8081, body, PAYLOAD_CONTENT_TYPE)
    returned = re.search(r"return 200 (\".*\");", text, re.DOTALL)
    assert returned is not None
    assert nginx_reads(returned.group(1)).encode() == body
    assert f'default_type "{PAYLOAD_CONTENT_TYPE}";' in text
    assert f'geo ${DOLLAR_VARIABLE} {{ default "$"; }}' in text
    assert "listen 127.0.0.1:8081;" in text


def test_proxy_config_is_one_worker_with_keepalive_and_no_access_log(tmp_path: Path) -> None:
    text = proxy_config(tmp_path, 8082, 8081)
    for line in (
        "worker_processes 1;",
        "access_log off;",
        "upstream u { server 127.0.0.1:8081; keepalive 32; }",
        "listen 127.0.0.1:8082;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
    ):
        assert line in text
    assert str(tmp_path / "temp" / "proxy") in text  # nothing written outside the prefix
