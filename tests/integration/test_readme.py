"""The README's console examples, run verbatim (ports rewritten) against a live cluster."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kvnode.cluster.supervisor import LocalCluster
from tests.integration.cli_processes import ClusterUp
from tests.integration.conftest import assert_clean_logs, make_cluster
from tests.waiting import wait_until_sync

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


def section_commands(text: str, heading: str) -> list[str]:
    """The lines of the first ```sh block under `## heading`."""
    section = text.split(f"## {heading}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, f"no sh block under {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_kill_a_node_runs_as_written(tmp_path: Path) -> None:
    """`kvnode cluster up` in one terminal, the section's commands in another, unchanged but
    for the node that the kill names (the README's example is node2)."""
    commands = section_commands(README.read_text(), "Kill a node")
    assert commands[0] == "kvnode cluster kill leader" and commands[-1] == "kvnode cluster ps"
    with ClusterUp(tmp_path) as up:
        killed = up.shell(commands[0])
        assert killed.returncode == 0, killed.stderr
        match = re.match(r"sent SIGKILL to (node\d)", killed.stdout)
        assert match, killed.stdout
        for command in commands[1:-1]:
            result = up.shell(command.replace("node2", match.group(1)))
            assert result.returncode == 0, (command, result.stderr)
        assert "still-here" in up.shell("kvnode get after-kill").stdout
        assert up.process is not None and up.process.poll() is None, up.diagnostics()

        def caught_up() -> str | None:
            table = up.shell(commands[-1]).stdout
            rows = [line.split() for line in table.splitlines()[1:]]
            states = {row[2] for row in rows}
            applied = {row[-2] for row in rows}
            return table if len(rows) == 3 and states == {"running"} and len(applied) == 1 else None

        table = wait_until_sync(caught_up, 30, "cluster ps to show every node caught up")
        assert match.group(1) in table
