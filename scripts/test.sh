#!/usr/bin/env bash
# Installs everything the test suite needs (idempotently) and runs it.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
python3 -m ruff check kvnode cluster tests
python3 -m pytest "$@"
