# syntax=docker/dockerfile:1
# The Trainyard server image: `yard server` (the API, the dashboard, the
# queue in Redis; the training workers run elsewhere) with the engine's venv,
# which the server itself needs for predictions, sweeps (Optuna) and ONNX
# export, on the CPU. Made from the release archive of scripts/package.sh:
#
#   scripts/package.sh                     # dist/trainyard-VERSION-linux-x86_64.tar.gz
#   docker build -f deploy/docker/server.Dockerfile --build-arg TRAINYARD_VERSION=VERSION -t trainyard-server:VERSION .
#
# The build context is the repository root; server.Dockerfile.dockerignore
# lets only the archive in.
FROM debian:bookworm-slim

ARG TRAINYARD_VERSION
# libsqlite3-0: the store (yard links the system SQLite); python3-venv: the
# engine's venv; libgl1 and libglib2.0-0: OpenCV; curl: the health check;
# zstd: `yard backup` compresses with it when it is on PATH.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl libsqlite3-0 python3 python3-venv libgl1 libglib2.0-0 fonts-dejavu-core zstd \
 && rm -rf /var/lib/apt/lists/*

# CPU wheels of torch: the server predicts and exports on the CPU (the
# default PyPI torch brings gigabytes of CUDA libraries it would not use).
COPY dist/trainyard-${TRAINYARD_VERSION}-linux-x86_64.tar.gz /tmp/
RUN tar -xzf /tmp/trainyard-${TRAINYARD_VERSION}-linux-x86_64.tar.gz -C /tmp \
 && PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    /tmp/trainyard-${TRAINYARD_VERSION}-linux-x86_64/install.sh --prefix /usr/local \
 && rm -rf /tmp/trainyard-* /root/.cache \
 && useradd --system --uid 10001 --home-dir /var/lib/trainyard --create-home --shell /usr/sbin/nologin yard

USER yard
ENV HOME=/var/lib/trainyard
VOLUME ["/var/lib/trainyard"]
EXPOSE 8787
# Liveness only: readiness (/ready) is for the orchestrator's routing.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8787/health || exit 1
ENTRYPOINT ["yard"]
# The queue's URL (with its password) comes from YARD_REDIS_URL, never the command line.
CMD ["server", "--host", "0.0.0.0", "--port", "8787", "--data-dir", "/var/lib/trainyard", "--log-format", "json"]
