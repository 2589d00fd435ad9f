#!/usr/bin/env bash
# Benchmarks. Usage: scripts/bench.sh storage [--json FILE] [--entries N]
#                   scripts/bench.sh stall [--keys N] [--duration S] [--json FILE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
what=${1:-}
shift || true
case "$what" in
  storage) exec python3 -m kvnode.bench.storage "$@" ;;
  stall) exec python3 -m kvnode.bench.stall "$@" ;;
  *) echo "usage: scripts/bench.sh storage|stall [options]   (see --help of each)" >&2; exit 2 ;;
esac
