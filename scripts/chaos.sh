#!/usr/bin/env bash
# Chaos run against a local cluster. Usage: scripts/chaos.sh [--duration S] [--nemesis LIST] ...
# A 30-minute soak: scripts/chaos.sh --duration 1800 --nemesis kill,kill-leader,pause,wipe,partition
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
exec python3 -m kvnode chaos "$@"
