#!/usr/bin/env bash
# kvnode against a local 3-member etcd (v2 API), both driven by hey, a native load
# generator: interleaved rounds, medians, CPU per operation of every server process.
# Installs etcd-server and hey from Debian's packages when they are missing (needs root).
# Usage: scripts/bench-vs-etcd.sh [--duration SECONDS] [--rounds N] [--row WORKLOAD:CONNS ...] [--floor] [--raft-floor] [--json FILE] [--readme docs/benchmarks.md]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v hey >/dev/null 2>&1 || missing+=(hey)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The etcd package may start a system etcd on the default ports; this benchmark runs its own.
  systemctl stop etcd >/dev/null 2>&1 || service etcd stop >/dev/null 2>&1 || true
fi
python3 -m pip install --quiet --disable-pip-version-check -e ".[server]" >/dev/null
exec python3 -m kvnode.bench.compare "$@"
