"""bench-vs-etcd's options: a row that does not exist, or some rows with --readme (which
writes the whole table), is refused before anything starts."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kvnode.bench.compare import main


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
