"""Short chaos runs, one per nemesis, each of which must end with a clean verdict: the
clients' history and what the watchers saw. Each run's report page shows its faults."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvnode.cluster.chaos import ChaosSettings, format_report, run_chaos
from tests.chaos.partitions import needs_partitions

pytestmark = pytest.mark.slow
DURATION = 20.0


@pytest.mark.parametrize(
    "nemesis",
    [
        "kill",
        "kill-leader",
        "pause",
        "pause-leader",
        "wipe",
        pytest.param("partition", marks=needs_partitions),
    ],
)
def test_a_short_run_under_each_nemesis_is_valid(tmp_path: Path, nemesis: str) -> None:
    settings = ChaosSettings(
        duration=DURATION,
        nemeses=[nemesis],
        seed=7,
        base_dir=tmp_path,
        report_dir=tmp_path / "report",
    )
    report = asyncio.run(run_chaos(settings))
    text = format_report(report)
    assert report["valid"], text
    assert report["faults"].get(nemesis, 0) >= 2, text
    assert report["operations"].get("ok", 0) > 500, text
    assert report["keys_checked"] >= 8
    assert report["watch"]["watchers"] == 2 and min(report["watch"]["events"]) > 100, text
    page = (tmp_path / "report" / "index.html").read_text()
    band = f'id="fault-{nemesis.removesuffix("-leader")}"'
    assert page.count(band) == 2 * report["faults"][nemesis], "a band on each plot per fault"
    leaders = {change["node"] for change in report["leader_changes"]} - {None}
    if nemesis in ("kill-leader", "pause-leader"):
        assert len(leaders) >= 2, report["leader_changes"]
