"""The chaos report page from a hand-made run: the plot carries a mark per outcome, a
band per fault and a line per leader change; the verdict and the minimal failing
sub-history of a violation are on the page, escaped; the raw history is beside it."""

from __future__ import annotations

import math
from pathlib import Path

from kvnode.cluster.chaos import judge
from kvnode.cluster.history import INFO, OK, Op, load_history
from kvnode.cluster.report_page import write_chaos_report

HOSTILE = "<img src=x onerror=alert(1)>"


def a_run_that_lost_a_write() -> list[Op]:
    """A put acknowledged, then a read that does not see it: not linearizable."""
    return [
        Op(
            1,
            0,
            "put",
            HOSTILE,
            value="v1",
            invoke=100.1,
            complete=100.2,
            outcome=OK,
            result="applied",
            revision=2,
        ),
        Op(2, 1, "get", HOSTILE, value=None, invoke=100.5, complete=100.6, outcome=OK),
        Op(3, 1, "put", "other", value="x", invoke=101.0, outcome=INFO, error="timeout"),
    ]


def test_the_page_shows_the_run_and_the_violation(tmp_path: Path) -> None:
    history = a_run_that_lost_a_write()
    report = judge(history)
    assert not report["valid"]
    report.update(
        started=100.0,
        fault_log=[{"fault": "kill", "node": "node2", "at": 100.3, "held": 0.5}],
        leader_changes=[
            {"at": 100.0, "node": "node1", "term": 1},
            {"at": 100.4, "node": None, "term": None},
        ],
    )
    page = write_chaos_report(tmp_path / "report", report, history, f"summary {HOSTILE}")
    text = page.read_text()
    assert "INVALID" in text and HOSTILE not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert text.count('id="fault-kill"') == 2  # one band on each plot
    assert text.count('id="leader-change"') == 4
    assert 'id="latency-ok"' in text and 'id="latency-info"' in text
    assert 'class="minimal"' in text and "#2 p1" in text  # the failing read, described
    saved = load_history((tmp_path / "report" / "history.json").read_bytes())
    assert [op.id for op in saved] == [1, 2, 3] and math.isinf(saved[2].complete)
