#!/bin/sh
# Starts `yard worker` on one GPU of this container (arguments are passed on).
#
# Docker Compose gives every replica of a scaled service the same GPU when a
# reservation says `count: 1`, and tells a replica nothing about which one it
# is. So the workers see all GPUs, and each takes the first one no other
# worker on this host holds: an flock on GPU_LOCKS/gpu-N (a volume the
# replicas share), held by the worker process for its whole life and freed
# by the kernel when it dies, so a restarted container finds its GPU free
# again. Its data dir is DATA/gpu-N, so no two workers share a tracking
# spool. YARD_GPU=N skips the search (Kubernetes: one GPU per pod, N=0).
set -eu
LOCKS=${GPU_LOCKS:-/run/trainyard-gpus}
DATA=${YARD_WORKER_DATA:-/var/lib/trainyard-worker}

if [ -n "${YARD_GPU:-}" ]; then
  exec yard worker --gpu "$YARD_GPU" --data-dir "$DATA/gpu-$YARD_GPU" "$@"
fi

if ! gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null) || [ -z "$gpus" ]; then
  echo "worker-entrypoint: nvidia-smi lists no GPU; give the container GPUs (NVIDIA container toolkit) or set YARD_GPU" >&2
  exit 1
fi
mkdir -p "$LOCKS"
for gpu in $gpus; do
  gpu=$(echo "$gpu" | tr -d ' \r')
  # fd 9 stays open across exec: the lock is the worker's until it exits.
  exec 9>"$LOCKS/gpu-$gpu"
  if flock -n 9; then
    exec yard worker --gpu "$gpu" --data-dir "$DATA/gpu-$gpu" "$@"
  fi
  exec 9>&-
done
# shellcheck disable=SC2086 # split on purpose: the indexes on one line
echo "worker-entrypoint: every GPU here ($(echo $gpus)) has a worker already; scale the workers to at most the GPU count" >&2
exit 1
