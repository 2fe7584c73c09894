# syntax=docker/dockerfile:1
# The Trainyard worker image: `yard worker` on a GPU, taking jobs from the

# NVIDIA container toolkit); the engine's venv with PyPI's CUDA build of torch.
# Made from the release archive of scripts/package.sh:
#
#   scripts/package.sh
#   docker build -f deploy/docker/worker.Dockerfile --build-arg TRAINYARD_VERSION=VERSION -t trainyard-worker:VERSION .
#
# The build context is the repository root; worker.Dockerfile.dockerignore
# lets only the archive and the entrypoint in.
FROM nvidia/cuda:12.8.1-base-ubuntu24.04

ARG TRAINYARD_VERSION
# util-linux: flock, with which the entrypoint picks a free GPU.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libsqlite3-0 python3 python3-venv libgl1 libglib2.0-0 fonts-dejavu-core util-linux \
 && rm -rf /var/lib/apt/lists/*

COPY dist/trainyard-${TRAINYARD_VERSION}-linux-x86_64.tar.gz /tmp/
RUN tar -xzf /tmp/trainyard-${TRAINYARD_VERSION}-linux-x86_64.tar.gz -C /tmp \
 && /tmp/trainyard-${TRAINYARD_VERSION}-linux-x86_64/install.sh --prefix /usr/local \
 && rm -rf /tmp/trainyard-* /root/.cache \
 && useradd --system --uid 10001 --home-dir /var/lib/trainyard-worker --create-home --shell /usr/sbin/nologin yard \
 && mkdir -p /run/trainyard-gpus && chown yard /run/trainyard-gpus
COPY --chmod=755 deploy/docker/worker-entrypoint.sh /usr/local/bin/worker-entrypoint.sh

USER yard
ENV HOME=/var/lib/trainyard-worker
VOLUME ["/var/lib/trainyard-worker"]
# A worker serves no HTTP: its liveness is its heartbeat, which the server
# shows (yard workers) and which moves its job to another worker when it stops.
ENTRYPOINT ["/usr/local/bin/worker-entrypoint.sh"]
