"""Brand-new venvs for the install tests: what a user gets from `pip install` with the
lock file, built from a copy of the checkout (building must leave the checkout as it was)."""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "scripts" / "requirements.lock"


def new_venv(where: Path) -> Path:
    """A venv with pip and nothing else; returns its python."""
    venv.create(where, with_pip=True)
    return where / "bin" / "python"


def pip_install(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`pip install ARGS` in the venv of `python`."""
    quiet = ["--quiet", "--disable-pip-version-check"]
    return subprocess.run(
        [str(python), "-m", "pip", "install", *quiet, *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def source_copy(tmp_path: Path) -> Path:
    """The files a build of kvnode reads, copied under `tmp_path`."""
    source = tmp_path / "src"
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "docs", "kvnode", "cluster"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, source / part)
    return source
