#!/usr/bin/env bash
# Regenerates kvnode/commands_pb2.py from kvnode/commands.proto.
# Usage: scripts/gen-proto.sh [OUTPUT_DIR]   (default: the kvnode package itself)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
python3 -m grpc_tools.protoc --proto_path="$root" --python_out="$out" --pyi_out="$out" kvnode/commands.proto
