"""scripts/requirements.lock is complete and is what the tests run with: a brand-new venv
given the lock file alone (no dependency resolution) has every package each locked package
needs, imports the node and the CLI, and runs `kvnode --help`; and the packages this run
imported are at the locked versions."""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from tests.install.fresh import LOCK, new_venv, pip_install, source_copy

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)")

# pip itself is pinned for fresh installs; the one running these tests may be older.
TOOLING = {"pip"}

pytestmark = pytest.mark.slow


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_every_dependency_of_kvnode_is_pinned_exactly() -> None:
    pins = locked()
    requirements = metadata.requires("kvnode") or []
    for requirement in requirements:
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not in {LOCK.name}; run scripts/lock.sh"


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None  # an extra this run did not install (bench)


def test_the_running_packages_are_the_locked_versions() -> None:
    mismatched = {
        name: (installed_version(name), version)
        for name, version in locked().items()
        if installed_version(name) not in (None, version) and name not in TOOLING
    }
    assert not mismatched, f"installed vs locked: {mismatched}; run scripts/test.sh"


def test_a_fresh_venv_from_the_lock_alone_runs_kvnode(tmp_path: Path) -> None:
    python = new_venv(tmp_path / "venv")
    installed = pip_install(python, "--no-deps", "--requirement", str(LOCK))
    assert installed.returncode == 0, installed.stderr[-3000:]
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, f"the lock misses a dependency:\n{check.stdout}"
    built = pip_install(python, "--no-deps", "--no-build-isolation", str(source_copy(tmp_path)))
    assert built.returncode == 0, built.stderr[-3000:]
    imported = subprocess.run(
        [python, "-c", "import kvnode.server, kvnode.cli, kvnode.cluster.chaos"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    helped = subprocess.run(
        [python.parent / "kvnode", "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert helped.returncode == 0 and "Usage: kvnode" in helped.stdout, helped.stderr
    shipped = subprocess.run(
        [python, "-c", SHIPPED], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert shipped.stdout.split() == ["Apache-2.0", "LICENSE", "py.typed"], shipped.stdout


# What an install carries besides code: the licence (its SPDX id and its text) and the
# PEP 561 marker that lets a user's type checker read kvnode's annotations.
SHIPPED = """
from importlib import metadata
files = {f.name for f in metadata.files("kvnode")}
print(metadata.metadata("kvnode")["License-Expression"])
print(*sorted(files & {"LICENSE", "py.typed"}))
"""
