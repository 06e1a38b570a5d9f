# monitor: Claude organization usage exporter and pass-through proxy.
#
#   docker build -t claude-monitor .
#   docker run --rm -p 127.0.0.1:4000:4000 claude-monitor demo --host 0.0.0.0
#
# docker-compose.yml builds and runs this image with Prometheus, Alertmanager
# and Grafana.

# Pinned base image (python 3.12 on Debian bookworm, slim). Any Debian-like image whose
# `python` and `pip` come first on PATH will do: the tests build on a local Debian one.
ARG BASE_IMAGE=python:3.12.11-slim-bookworm
FROM ${BASE_IMAGE}

# pip's own settings, unset unless given, for a build without an index:
#   docker build --network host --build-arg PIP_NO_INDEX=1 \
#       --build-arg PIP_FIND_LINKS=http://127.0.0.1:8000/ .
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Unprivileged user the daemon runs as.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin monitor

# Dependencies and the build backend exactly as pinned, hashes checked (a layer of
# its own, rebuilt only when the lock changes); then the package itself, which needs
# nothing more. `pip check` fails the build if the lock missed a dependency.
WORKDIR /src
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-deps --no-build-isolation . && pip check && rm -rf /src

WORKDIR /
USER monitor:monitor

EXPOSE 4000

# Probes /healthz where the daemon (PID 1) listens: `monitor healthcheck --pid 1` reads
# --config, --host and --port from the daemon's own command line, so a `--port` given
# to `docker run` or a port set in the config file is followed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["monitor", "healthcheck", "--pid", "1"]

ENTRYPOINT ["monitor"]
CMD ["run", "--host", "0.0.0.0"]
