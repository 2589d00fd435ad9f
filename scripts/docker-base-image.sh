#!/usr/bin/env bash
# Builds a local base image for kvnode where no image registry can be reached:
# debootstrap a minimal Debian with python3 and import it into Docker.
# Idempotent: does nothing when the image already exists.
# Usage: scripts/docker-base-image.sh [IMAGE]        (default kvnode-base:bookworm)
# Then:  KVNODE_BASE_IMAGE=kvnode-base:bookworm scripts/docker-build.sh
set -euo pipefail
image=${1:-${KVNODE_BASE_IMAGE:-kvnode-base:bookworm}}
suite=${KVNODE_DEBIAN_SUITE:-bookworm}
mirror=${KVNODE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already exists"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing debootstrap..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
rootfs=$(mktemp -d /tmp/kvnode-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrapping $suite into $rootfs (a few minutes)..." >&2
debootstrap --variant=minbase --include=python3,python3-venv "$suite" "$rootfs" "$mirror" >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$image" >/dev/null
echo "built base image $image"
