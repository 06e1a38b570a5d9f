"""Debian's nginx, from throwaway configs: the static upstream and the reference proxy.

- `static_config`: `return 200` of a fixed body with a fixed Content-Type. The proxy
  scenarios' upstream, so that the references in front of it are not held back by a
  slow upstream (a Python upstream carries about 10k req/s here; nginx several times that).
- `proxy_config`: nginx as a reverse proxy in front of an upstream, keepalive to it.

Both: one worker, no master process, access log off, everything under a prefix directory.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.procs import HOST, Processes, free_port

# A variable holding "$": nginx's quoted strings have no escape for it, and `return`
# expands variables in its text. `geo` values are taken literally.
DOLLAR_VARIABLE = "bench_dollar"
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "$": "${" + DOLLAR_VARIABLE + "}",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def quoted(text: str) -> str:
    """`text` as a double-quoted nginx string whose `return` yields exactly `text`.

    nginx reads `\\"`, `\\\\`, `\\n`, `\\r`, `\\t` in quoted strings; `$` starts a variable
    in `return`'s text, so it becomes `${bench_dollar}` (see `DOLLAR_VARIABLE`)."""
    return '"' + "".join(_ESCAPES.get(char, char) for char in text) + '"'


def _head(prefix: Path) -> str:
    temp = prefix / "temp"
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
"""


def static_config(prefix: Path, listen_port: int, body: bytes, content_type: str) -> str:
    """Every request answered 200 with `body` (UTF-8 text) and `content_type`."""
    return (
        _head(prefix)
        + f"""    geo ${DOLLAR_VARIABLE} {{ default "$"; }}
    server {{
        listen {HOST}:{listen_port};
        keepalive_requests 1000000;
        location / {{
            default_type {quoted(content_type)};
            return 200 {quoted(body.decode("utf-8"))};
        }}
    }}
}}
"""
    )


def proxy_config(prefix: Path, listen_port: int, upstream_port: int) -> str:
    return (
        _head(prefix)
        + f"""    upstream u {{ server {HOST}:{upstream_port}; keepalive 32; }}
    server {{
        listen {HOST}:{listen_port};
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )


def start_static(
    procs: Processes, nginx: str, workdir: Path, body: bytes, content_type: str
) -> tuple[subprocess.Popen[bytes], str]:
    """The static upstream (see `static_config`); its process and base URL."""
    prefix, port = _prefix(workdir, "nginx-static"), free_port()
    text = static_config(prefix, port, body, content_type)
    return _start(procs, nginx, prefix, "nginx-static", port, text)


def start_proxy(
    procs: Processes, nginx: str, workdir: Path, upstream_port: int
) -> tuple[subprocess.Popen[bytes], str]:
    """nginx proxying to 127.0.0.1:`upstream_port` (see `proxy_config`)."""
    prefix, port = _prefix(workdir, "nginx-proxy"), free_port()
    text = proxy_config(prefix, port, upstream_port)
    return _start(procs, nginx, prefix, "nginx-proxy", port, text)


def _prefix(workdir: Path, name: str) -> Path:
    prefix = workdir / name
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    return prefix


def _start(
    procs: Processes, nginx: str, prefix: Path, name: str, port: int, text: str
) -> tuple[subprocess.Popen[bytes], str]:
    conf = prefix / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    process = procs.start(name, [nginx, "-c", str(conf), "-p", str(prefix), "-e", "stderr"])
    return process, f"http://{HOST}:{port}"
