"""Suite-wide checks: a CRITICAL line or a traceback in any node's log fails the test during
which it was written, whichever fixture or helper started the node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnode.storage.layout import WAL_FILE

BAD_MARKERS = (b"CRITICAL", b"Traceback")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "expect_critical: the test makes a node fail-stop on purpose (its CRITICAL line is"
        " the behaviour under test), so node logs are not checked for it",
    )


def node_logs(base: Path) -> Iterator[Path]:
    """The node logs under the session's temporary directory (a node's WAL is named
    `.log` too, and is not one)."""
    for path in base.rglob("*.log"):
        if path.name != WAL_FILE and path.is_file():
            yield path


@pytest.fixture(autouse=True)
def node_logs_stay_clean(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    base = tmp_path_factory.getbasetemp()
    written_before = {path: path.stat().st_size for path in node_logs(base)}
    yield
    if request.node.get_closest_marker("expect_critical"):
        return
    bad: list[str] = []
    for path in node_logs(base):
        with open(path, "rb") as handle:
            handle.seek(written_before.get(path, 0))
            new = handle.read()
        bad += [
            f"{path.name}: {line.decode(errors='replace')}"
            for line in new.splitlines()
            if any(marker in line for marker in BAD_MARKERS)
        ]
    assert not bad, "node logs have CRITICAL lines or tracebacks:\n" + "\n".join(bad[:5])
