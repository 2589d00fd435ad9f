"""Every package of the source tree is installed: pyproject.toml lists packages by name (it
maps cluster/ to kvnode.cluster), so a new folder left out of the list would work in an
editable checkout and be missing from a wheel, a Docker image or a fresh venv."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def source_packages() -> set[str]:
    found = {"kvnode.cluster"} if (ROOT / "cluster" / "__init__.py").exists() else set()
    for module in (ROOT / "kvnode").rglob("*.py"):  # folders with or without __init__.py
        found.add(".".join(module.parent.relative_to(ROOT).parts))
    return found


def test_pyproject_lists_every_package_of_the_tree() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    assert source_packages() == listed
