"""The README's console examples, run verbatim (ports rewritten) against a live cluster."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cluster.supervisor import LocalCluster
from tests.integration.conftest import assert_clean_logs, make_cluster

README = Path(__file__).resolve().parents[2] / "README.md"
WILDCARD = "..."


def console_examples(text: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs from ```console blocks: `$ cmd` then its output."""
    examples: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL):
        for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = chunk.partition("\n")
            examples.append((command, output.strip()))
    return examples


def matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split(WILDCARD))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


def test_readme_has_examples() -> None:
    examples = console_examples(README.read_text())
    assert len(examples) >= 8
    assert examples[0][0] == "curl -s -X PUT 'localhost:8001/kv/foo?ttl=10' --data-binary bar"


@pytest.mark.slow
def test_readme_console_examples_produce_the_documented_output(tmp_path: Path) -> None:
    local: LocalCluster = make_cluster(tmp_path / "c")
    try:
        ports = {f"localhost:{8001 + i}": node.http_addr for i, node in enumerate(local.nodes)}
        for command, expected in console_examples(README.read_text()):
            for documented, actual in ports.items():
                command = command.replace(documented, actual)
            result = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=30
            )
            assert result.returncode == 0, (command, result.stderr)
            assert matches(expected, result.stdout.strip()), (command, expected, result.stdout)
    finally:
        local.stop_all()
    assert_clean_logs(local)
