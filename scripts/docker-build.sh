#!/usr/bin/env bash
# Builds the kvnode image where no registry is reachable: a local base image
# (scripts/docker-base-image.sh) plus Python wheels built on this host.
# Idempotent. Afterwards `docker compose up -d` (or docker-compose) starts the cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export KVNODE_BASE_IMAGE=${KVNODE_BASE_IMAGE:-kvnode-base:bookworm}
bash scripts/docker-base-image.sh "$KVNODE_BASE_IMAGE"
find docker/wheels -name "*.whl" -delete
rm -rf build  # a stale setuptools build tree could carry files the package no longer has
python3 -m pip wheel --quiet --disable-pip-version-check \
  --constraint scripts/requirements.lock -w docker/wheels ".[server]" >/dev/null
if docker compose version >/dev/null 2>&1; then compose="docker compose"; else compose="docker-compose"; fi
$compose build
