# monitor: Claude organization usage exporter and pass-through proxy.
#
#   docker build -t claude-monitor .
#   docker run --rm -p 127.0.0.1:4000:4000 claude-monitor demo --host 0.0.0.0
#
# docker-compose.yml builds and runs this image with Prometheus, Alertmanager
# and Grafana.

# Pinned base image (python 3.12 on Debian bookworm, slim).
FROM python:3.12.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Unprivileged user the daemon runs as.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin monitor

# Install the package (and only what it needs) from the build context, then
# drop the sources: the installed package is in site-packages.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install . && rm -rf /src

WORKDIR /
USER monitor:monitor

EXPOSE 4000

# python:3.12-slim has no curl or wget: probe /healthz with urllib. Assumes the
# default port 4000; change the URL if config.toml sets another port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:4000/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["monitor"]
CMD ["run", "--host", "0.0.0.0"]
