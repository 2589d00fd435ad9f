"""bench-vs-etcd's options: a row that does not exist, or some rows with --readme (which
writes the whole table), is refused before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from kvnode.bench.compare import format_floor, main


def test_an_unknown_row_is_refused() -> None:
    result = CliRunner().invoke(main, ["--row", "stale-get:1"])
    assert result.exit_code == 2
    assert "stale-get:64" in result.output  # the rows there are


def test_some_rows_cannot_rewrite_the_whole_table(tmp_path: Path) -> None:
    readme = tmp_path / "benchmarks.md"
    readme.write_text("before\n")
    result = CliRunner().invoke(main, ["--row", "put:1", "--readme", str(readme)])
    assert result.exit_code == 2
    assert "cannot take --row" in result.output
    assert readme.read_text() == "before\n"


def row(
    system: str, ok_per_s: float, leader_cpu: float, workload: str = "stale-get", p50: float = 1.0
) -> dict[str, Any]:
    return {
        "system": system,
        "workload": workload,
        "connections": 64,
        "ok_per_s": ok_per_s,
        "latency": {"p50_ms": p50},
        "cpu_us_per_op": {"leader": leader_cpu},
    }


def test_the_floor_is_printed_beside_etcd_with_its_ratio() -> None:
    medians = {
        "etcd": [row("etcd", 20000.0, 30.0)],
        "kvnode": [row("kvnode", 12000.0, 50.0)],
        "floor": [row("floor", 30000.0, 18.0)],
    }
    line = format_floor(medians, "floor").splitlines()[-1].split()
    assert line[:5] == ["stale-get", "64", "20000.0", "30000.0", "1.50"]
    assert line[5:] == ["1.0", "1.0", "18.0", "12000.0", "50.0"]


def test_the_raft_floor_is_printed_beside_the_rows_it_was_measured_on() -> None:
    medians = {
        "etcd": [row("etcd", 20000.0, 30.0), row("etcd", 8000.0, 90.0, "put", p50=7.5)],
        "kvnode": [row("kvnode", 12000.0, 50.0), row("kvnode", 6000.0, 120.0, "put", p50=9.6)],
        "raft-floor": [row("raft-floor", 12000.0, 40.0, "put", p50=5.3)],
    }
    lines = format_floor(medians, "raft-floor").splitlines()
    assert "PySyncObj" in lines[0]
    assert len(lines) == 3  # the title, the header and the one PUT row
    assert lines[-1].split() == [
        *("put", "64", "8000.0", "12000.0", "1.50", "7.5", "5.3", "40.0", "6000.0", "120.0")
    ]
