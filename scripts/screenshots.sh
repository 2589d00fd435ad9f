#!/usr/bin/env bash
# Redraws the README's pictures of the console and of a chaos report (docs/console/*.png):
# they are the screenshots the browser tests take, saved here instead of in the run's
# temporary directory. Needs what scripts/test.sh installs (chromium, chromium-driver).
# Usage: scripts/screenshots.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
KVNODE_SCREENSHOTS="$root/docs/console" python3 -m pytest -q tests/browser
echo "wrote docs/console/*.png"
