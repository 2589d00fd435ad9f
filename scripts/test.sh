#!/usr/bin/env bash
# Installs everything the test suite needs (idempotently) and runs it.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Debian tools the integration, chaos, Docker and browser tests use (as root, only when
# missing): the console's tests drive headless Chromium through chromium-driver.
missing=()
for pair in ip:iproute2 ss:iproute2 iptables:iptables curl:curl debootstrap:debootstrap \
  chromium:chromium chromedriver:chromium-driver; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: not root; missing tools (${missing[*]}) mean some tests will be skipped" >&2
  fi
fi
# Where Docker is installed its tests must run, never be skipped silently.
if command -v docker >/dev/null 2>&1; then
  export KVNODE_REQUIRE_DOCKER=1
fi
# As root the partition tools and the browser are installed above, so their tests must
# run too.
if [ "$(id -u)" = 0 ]; then
  export KVNODE_REQUIRE_NETNS=1 KVNODE_REQUIRE_BROWSER=1
fi

# Exactly the versions in scripts/requirements.lock (regenerate with scripts/lock.sh).
python3 -m pip install --quiet --disable-pip-version-check \
  --constraint scripts/requirements.lock -e ".[server,test,report]"
python3 -m ruff check kvnode cluster tests
python3 -m mypy  # --strict on kvnode/ and cluster/ (pyproject.toml [tool.mypy])
python3 -m pytest "$@"
