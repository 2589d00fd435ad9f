#!/usr/bin/env bash
# Benchmarks. Usage: scripts/bench.sh storage [--json FILE] [--entries N]
#                   scripts/bench.sh http-floor [--seconds S] [--rounds N] [--connections C]
#                   scripts/bench.sh stall [--keys N] [--duration S] [--json FILE]
#                   scripts/bench.sh raft-floor [--seconds S] [--rounds N]
#                   scripts/bench.sh unix-hop [--seconds S] [--rounds N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-}
shift || true
case "$what" in
  storage) exec python3 -m kvnode.bench.storage "$@" ;;
  stall) exec python3 -m kvnode.bench.stall "$@" ;;
  http-floor) exec python3 -m kvnode.bench.floor run "$@" ;;
  raft-floor) exec python3 -m kvnode.bench.raft_floor run "$@" ;;
  unix-hop) exec python3 -m kvnode.bench.unix_hop "$@" ;;
  *) echo "usage: scripts/bench.sh storage|stall|http-floor|raft-floor|unix-hop [options]   (see --help of each)" >&2; exit 2 ;;
esac
