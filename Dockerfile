# The heartbeat-operator image: one process per replica, `heartbeat-operator run`
# (kopf watches + ping receiver on 8080 + metrics on 8081; DESIGN 6).
#
#   docker build -t heartbeat-operator:0.1.0 .
#
# The chart's default image is heartbeat-operator:<appVersion>; `make e2e-kind` builds
# this tag and loads it into kind. Keep the version label equal to pyproject's version
# (tests/unit/test_chart.py checks).

# Pinned base: an exact Python patch release on an exact Debian release. For byte-for-byte
# reproducible builds, append the digest your registry serves for this tag (@sha256:…).
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# --- build: install the project and its exactly pinned dependencies into a venv -----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/heartbeat
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ ./operator/
# Every dependency is pinned to an exact version in pyproject.toml.
RUN /opt/heartbeat/bin/pip install --no-cache-dir . \
    && /opt/heartbeat/bin/heartbeat-operator --help > /dev/null

# --- run: the venv on a clean slim base, as an unprivileged user -------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="heartbeat-operator" \
      org.opencontainers.image.description="Heartbeat monitoring for Kubernetes" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/heartbeat/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric user, so Kubernetes can verify runAsNonRoot without reading /etc/passwd
# (the chart runs it as 10001 with a read-only root filesystem).
RUN groupadd --system --gid 10001 heartbeat \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin heartbeat
COPY --from=build /opt/heartbeat /opt/heartbeat
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["heartbeat-operator"]
CMD ["run"]
