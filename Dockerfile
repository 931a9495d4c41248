# syntax=docker/dockerfile:1
# FunnelStream image: one image, every process. The entrypoint is the `funnelstream` command,
# so the container command is a subcommand: `ingest --host 0.0.0.0`, `api ...`, `scoring`, `nurture`,
# `migrate`, `topics`, `dlq list`.
#
#   docker build -t funnelstream:local .
#   docker run --rm funnelstream:local --help

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its dependencies into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/funnelstream
ENV PATH=/opt/funnelstream/bin:$PATH

WORKDIR /src
# Only what the wheel is built from (pyproject names README.md as the readme).
COPY pyproject.toml README.md ./
COPY funnelstream ./funnelstream
COPY services ./services
COPY shared ./shared
RUN pip install . \
 && funnelstream --help > /dev/null

# --- runtime -------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/funnelstream/bin:$PATH

# Numeric uid/gid so Kubernetes `runAsNonRoot` can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 funnelstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/funnelstream --create-home \
        --shell /usr/sbin/nologin funnelstream

COPY --from=build /opt/funnelstream /opt/funnelstream

USER 10001:10001
WORKDIR /home/funnelstream

# 8000: ingest / api HTTP (also /healthz /readyz /metrics). 9000: consumers' health port
# when FUNNELSTREAM_HEALTH_PORT=9000.
EXPOSE 8000 9000

ENTRYPOINT ["funnelstream"]
CMD ["--help"]
