#!/usr/bin/env bash
# Regenerates scripts/requirements.lock: the exact version of every runtime, test and bench
# dependency (pyproject.toml keeps ranges for users who pip install kvnode). scripts/test.sh,
# CI and the Docker build install with it as a constraints file, so every run uses the same
# versions. Run it after changing a dependency in pyproject.toml, then run the tests.
# Usage: scripts/lock.sh [pip-compile options, e.g. --upgrade-package aiohttp]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools=$(mktemp -d /tmp/kvnode-lock.XXXXXX)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install --quiet --disable-pip-version-check pip-tools==7.5.1
"$tools/bin/pip-compile" --quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
  --extra server --extra test --extra bench --extra report --output-file scripts/requirements.lock "$@" pyproject.toml
echo "wrote scripts/requirements.lock"
