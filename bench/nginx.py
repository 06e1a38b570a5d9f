"""nginx (Debian's package) as the reference reverse proxy, from a throwaway config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.procs import HOST, Processes, free_port


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


def nginx_config(prefix: Path, listen_port: int, upstream_port: int) -> str:
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
    upstream u {{ server {HOST}:{upstream_port}; keepalive 32; }}
    server {{
        listen {HOST}:{listen_port};
        location / {{
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_nginx(
    procs: Processes, nginx: str, workdir: Path, upstream_port: int
) -> tuple[subprocess.Popen[bytes], str]:
    prefix = workdir / "nginx"
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(prefix, port, upstream_port), encoding="utf-8")
    process = procs.start("nginx", [nginx, "-c", str(conf), "-p", str(prefix), "-e", "stderr"])
    return process, f"http://{HOST}:{port}"
