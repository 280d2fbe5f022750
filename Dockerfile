# otel-mltrace collector image: `otel-mltrace serve` (OTLP gRPC :4317, OTLP/HTTP + API +
# /metrics :4318), SQLite by default, PostgreSQL when MLTRACE_DB is a postgresql:// URL.
#
#   docker build -t otel-mltrace .
#   docker run -p 4317:4317 -p 4318:4318 otel-mltrace
#   docker run -e MLTRACE_DB=postgresql://mltrace:secret@db:5432/lineage otel-mltrace
#
# Every `serve` flag has an MLTRACE_* variable (otel_mltrace/config.py); flags given after
# the image name are appended to the entrypoint (`docker run otel-mltrace --log-level DEBUG`).

ARG PYTHON_VERSION=3.11

# --- build: install the package and its collector + PostgreSQL extras into a venv ---------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the optional extension mltrace_collector._otlp_fast (the OTLP decode
# accelerator); only this stage has it, the runtime stage copies the built venv. Unpinned on
# purpose: Debian point releases replace exact versions, and any gcc builds this C file.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY otel_mltrace ./otel_mltrace
COPY collector ./collector
RUN python -m venv /opt/otel-mltrace \
 && /opt/otel-mltrace/bin/pip install ".[collector,postgres]" \
 && /opt/otel-mltrace/bin/python -c "import mltrace_collector._otlp_fast" \
 && /opt/otel-mltrace/bin/otel-mltrace serve --help >/dev/null

# --- runtime: slim base, the venv only, non-root ------------------------------------------
FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="otel-mltrace" \
      org.opencontainers.image.description="OpenTelemetry lineage collector for ML pipelines" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 mltrace \
 && useradd --system --uid 10001 --gid mltrace --home-dir /var/lib/otel-mltrace \
      --create-home --shell /usr/sbin/nologin mltrace
COPY --from=build /opt/otel-mltrace /opt/otel-mltrace
# The secure default of `serve` is 127.0.0.1; inside a container the listeners must bind
# every interface to be reachable through published ports: this is the explicit opt-in.
ENV PATH=/opt/otel-mltrace/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLTRACE_GRPC_ADDRESS=0.0.0.0:4317 \
    MLTRACE_HTTP_ADDRESS=0.0.0.0:4318 \
    MLTRACE_DB=/var/lib/otel-mltrace/index.db
USER 10001:10001
WORKDIR /var/lib/otel-mltrace
VOLUME ["/var/lib/otel-mltrace"]
EXPOSE 4317 4318
# /healthz answers 200 while the store answers (same endpoint as the k8s probes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:4318/healthz', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["otel-mltrace", "serve"]
