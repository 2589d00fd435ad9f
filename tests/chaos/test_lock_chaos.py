"""A short chaos run with `kvnode lock` contenders: the node nemesis and the contenders' own
faults (paused waiters, SIGTERM, SIGKILL) together, and no two critical sections may
overlap in real time, with fencing tokens growing at every handover."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvnode.cluster.chaos import ChaosSettings, format_report, run_chaos

pytestmark = pytest.mark.slow


def test_lock_contenders_under_node_and_client_faults_never_overlap(tmp_path: Path) -> None:
    settings = ChaosSettings(
        duration=25.0,
        nemeses=["kill-leader", "pause"],
        seed=3,
        clients=4,
        rate=10.0,
        base_dir=tmp_path,
        watchers=0,
        locks=4,
    )
    report = asyncio.run(run_chaos(settings))
    text = format_report(report)
    locks = report["locks"]
    assert report["valid"] and locks["valid"], text
    assert locks["sections"] >= 10, text
    assert sum(report["faults"].values()) >= 2, text
    assert sum(locks["faults"].values()) >= 3 and locks["faults"].get("pause-waiter", 0) >= 1, text
