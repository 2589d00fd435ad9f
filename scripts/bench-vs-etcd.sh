#!/usr/bin/env bash
# Same workloads against a local 3-member etcd (v2 API) and a local kvnode cluster.
# Installs etcd-server from Debian's packages when it is missing (needs root).
# Usage: scripts/bench-vs-etcd.sh [--duration SECONDS] [--json FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v etcd >/dev/null 2>&1; then
  echo "installing etcd-server..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
  # The package starts a system etcd on the default ports; this benchmark runs its own.
  systemctl stop etcd >/dev/null 2>&1 || service etcd stop >/dev/null 2>&1 || true
fi
python3 -m pip install --quiet --disable-pip-version-check -e . >/dev/null
exec python3 -m kvnode.bench.compare "$@"
