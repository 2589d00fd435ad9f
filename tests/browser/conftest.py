"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by selenium, for
the console and the report pages. scripts/test.sh installs both when missing and, as
root, sets KVNODE_REQUIRE_BROWSER so that a missing browser fails instead of skipping."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = "1400,900"


def browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    return None


MISSING = browser_missing()
if MISSING and os.environ.get("KVNODE_REQUIRE_BROWSER") == "1":
    pytest.fail(f"the browser tests must run here: {MISSING}", pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if MISSING:
        pytest.skip(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        # The HTTPS test's CA is made at test time and is not in the browser's store.
        "--ignore-certificate-errors",
        f"--window-size={WINDOW}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each view's picture goes: `KVNODE_SCREENSHOTS` (scripts/screenshots.sh points it
    at docs/console/ for the README), else the run's temporary directory, kept as an
    artefact of the run."""
    chosen = os.environ.get("KVNODE_SCREENSHOTS")
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")
