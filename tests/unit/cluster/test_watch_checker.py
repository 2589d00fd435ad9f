"""The watcher checker on hand-made logs: it accepts watchers that saw exactly the committed
changes and names each way of getting them wrong."""

from __future__ import annotations

from kvnode.cluster.history import FAIL, INFO, OK, Op
from kvnode.cluster.watch_checker import check_watchers
from kvnode.cluster.watchers import END_MARKER, WatcherLog

HISTORY = [
    Op(1, 0, "put", "chaos/a", value="0-1", outcome=OK, result="applied", revision=10),
    Op(2, 1, "put", "chaos/b", value="1-1", outcome=INFO),  # indeterminate: may be seen
    Op(3, 0, "delete", "chaos/a", outcome=OK, result="applied", revision=12),
    Op(4, 1, "put", "chaos/b", value="1-2", outcome=FAIL),  # refused: must not be seen
]
SEEN = [
    (10, "put", "chaos/a", "0-1"),
    (11, "put", "chaos/b", "1-1"),
    (12, "delete", "chaos/a", None),
    (13, "expire", "chaos/ttl0", None),
    (13, "expire", "chaos/ttl1", None),  # one command, two keys
    (14, "put", END_MARKER, "end"),
]


def watchers(*event_lists: list[tuple[int, str, str, str | None]]) -> list[WatcherLog]:
    return [WatcherLog(f"w{i}", list(events)) for i, events in enumerate(event_lists)]


def problems(logs: list[WatcherLog]) -> list[str]:
    report = check_watchers(logs, HISTORY)
    assert report["valid"] == (not report["problems"])
    found: list[str] = report["problems"]
    return found


def test_watchers_that_saw_the_committed_changes_are_valid() -> None:
    assert problems(watchers(SEEN, SEEN)) == []


def test_a_missed_acknowledged_write_is_named() -> None:
    missed = [e for e in SEEN if e[0] != 12]
    (problem,) = problems(watchers(missed))
    assert "acknowledged" in problem and "revision 12" in problem


def test_a_watcher_that_misses_what_another_saw_is_named() -> None:
    missed = [e for e in SEEN if e[0] != 11]
    (problem,) = problems(watchers(SEEN, missed))
    assert "disagree on chaos/b" in problem


def test_a_repeated_event_is_named() -> None:
    repeated = [*SEEN[:3], SEEN[2], *SEEN[3:]]
    assert any("repeated" in p for p in problems(watchers(repeated)))


def test_an_event_out_of_order_is_named() -> None:
    swapped = [SEEN[1], SEEN[0], *SEEN[2:]]
    assert any("out of revision order" in p for p in problems(watchers(swapped)))


def test_a_value_no_client_wrote_is_named() -> None:
    invented = [*SEEN[:2], (11, "put", "chaos/c", "1-2"), *SEEN[2:]]
    assert any("no client wrote it" in p for p in problems(watchers(invented)))


def test_a_watcher_that_did_not_finish_is_named() -> None:
    logs = watchers(SEEN, SEEN)
    logs[1].error = "did not reach the end marker within 60 s"
    assert problems(logs) == ["w1: did not reach the end marker within 60 s"]


def test_only_a_put_slower_than_its_ttl_may_be_missing_as_dead_on_arrival() -> None:
    """Seen in a pause run: a put with ttl=0.5 answered 0.68 s after it was called had
    outlived its TTL in the log before it was applied; the store wrote nothing (no event)
    and answered OK at that revision."""
    slow = Op(5, 2, "put", "chaos/ttl0", value="2-1", ttl=0.5, invoke=1.0, complete=1.68)
    quick = Op(6, 2, "put", "chaos/ttl1", value="2-2", ttl=0.5, invoke=2.0, complete=2.1)
    for op, revision in ((slow, 20), (quick, 21)):
        op.outcome, op.result, op.revision = OK, "applied", revision
    report = check_watchers(watchers(SEEN), [*HISTORY, slow, quick])
    (problem,) = report["problems"]
    assert "revision 21" in problem  # the quick one had to be seen
