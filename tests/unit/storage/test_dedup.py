"""Request ids make retried writes exactly-once, across restarts and snapshots."""

from __future__ import annotations

from pathlib import Path

from kvnode import commands
from kvnode.commands import condition
from kvnode.storage.dedup import (
    DEDUP_MAX_ENTRIES,
    DEDUP_MAX_REPLY_BYTES,
    DEDUP_WINDOW_MS,
    RequestLog,
    RequestRecord,
)
from kvnode.storage.machine import Entry, StateMachine
from kvnode.storage.outcome import Outcome, Status


def put(key: str, value: bytes, request_id: str, at: int = 1000, **kw: object) -> bytes:
    return commands.put(key, value, issued_at_ms=at, request_id=request_id, **kw)  # type: ignore[arg-type]


def decided(outcome: Outcome | None) -> Outcome:
    """What a command decided, without the store revision it was answered at."""
    assert outcome is not None
    return outcome._replace(log_index=0)


def test_a_retried_put_returns_the_first_outcome_and_changes_nothing(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "sm")
    (first,) = machine.apply([Entry(3, 1, put("k", b"v1", "req-1"))])
    machine.apply([Entry(4, 1, put("k", b"v2", "req-2"))])
    (retry,) = machine.apply([Entry(5, 1, put("k", b"v1", "req-1"))])
    assert decided(retry) == decided(first) and retry is not None and retry.revision == 1
    assert retry.log_index == 2  # the store revision when the retry was answered
    assert machine.revision == 2  # an answered retry takes no revision
    record = machine.read("k")[0]
    assert record is not None and (record.value, record.mod_revision) == (b"v2", 2)


def test_a_retried_cas_reports_its_success_not_a_compare_failure(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "sm")
    machine.apply([Entry(3, 1, put("k", b"old", "a"))])
    cas = put("k", b"new", "cas-1", when=condition(prev_value=b"old"))
    (first,) = machine.apply([Entry(4, 1, cas)])
    (retry,) = machine.apply([Entry(5, 1, cas)])
    assert first is not None and first.status is Status.OK
    assert decided(retry) == decided(first)


def test_request_ids_survive_restart_and_snapshot_install(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "a", checkpoint_entries=2)
    outcomes = machine.apply([Entry(i, 1, put(f"k{i}", b"v", f"r{i}")) for i in range(3, 10)])
    machine.close(checkpoint=False)
    reopened = StateMachine(tmp_path / "a")  # checkpoint + WAL replay
    (retried,) = reopened.apply([Entry(10, 1, put("k3", b"v", "r3", at=5000))])
    assert decided(retried) == decided(outcomes[0])
    snapshot = reopened.snapshot(tmp_path / "handoff.snap")
    other = StateMachine(tmp_path / "b")
    other.restore(snapshot)
    (retried,) = other.apply([Entry(11, 1, put("k9", b"v", "r9"))])
    assert decided(retried) == decided(outcomes[-1])
    # The binding of each id to its request survives the checkpoint and the snapshot too.
    (reused,) = other.apply([Entry(12, 1, put("k9", b"again", "r9"))])
    assert reused is not None and reused.status is Status.REQUEST_ID_REUSED
    assert other.read("k9")[0].value == b"v"  # type: ignore[union-attr]


def test_an_id_reused_for_another_request_is_refused_and_applies_nothing(
    tmp_path: Path,
) -> None:
    machine = StateMachine(tmp_path / "sm")
    machine.apply([Entry(3, 1, put("alpha", b"a", "client-42", expire_at_ms=61_000))])
    reuses = [
        put("beta", b"a", "client-42"),  # another key
        put("alpha", b"b", "client-42", expire_at_ms=61_000),  # another value
        put("alpha", b"a", "client-42", expire_at_ms=62_000),  # another ttl
        put("alpha", b"a", "client-42", expire_at_ms=61_000, when=condition(prev_value=b"a")),
        commands.delete("alpha", issued_at_ms=1000, request_id="client-42"),
    ]
    outcomes = machine.apply([Entry(4 + i, 1, c) for i, c in enumerate(reuses)])
    assert {o.status for o in outcomes if o is not None} == {Status.REQUEST_ID_REUSED}
    assert machine.read("beta")[0] is None
    assert machine.read("alpha", now_ms=1000)[0].value == b"a"  # type: ignore[union-attr]
    # The same request again, even issued later (same ttl from a later clock), is a retry.
    (retry,) = machine.apply(
        [Entry(9, 1, put("alpha", b"a", "client-42", at=2000, expire_at_ms=62_000))]
    )
    assert retry is not None and retry.status is Status.OK and retry.revision == 1


def test_the_table_stays_bounded_by_count_and_by_time(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "sm", fsync=False, checkpoint_entries=10**9)
    total = DEDUP_MAX_ENTRIES + 20_000
    for start in range(0, total, 4096):
        batch = [
            Entry(3 + i, 1, put(f"k{i % 100}", b"v", f"req-{i}", at=1_000_000))
            for i in range(start, min(total, start + 4096))
        ]
        machine.apply(batch)
    assert machine.stats().request_ids == DEDUP_MAX_ENTRIES
    later = 1_000_000 + DEDUP_WINDOW_MS + 1
    machine.apply([Entry(3 + total, 1, put("k", b"v", "late", at=later))])
    assert machine.stats().request_ids == 1, "ids older than the window are forgotten"


def test_ids_are_forgotten_by_time_even_when_no_new_id_comes(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "sm", fsync=False)
    machine.apply([Entry(3, 1, put("k", b"v", "only", at=1000))])
    assert machine.stats().request_ids == 1
    later = 1000 + DEDUP_WINDOW_MS + 1
    machine.apply([Entry(4, 1, commands.put("k", b"w", issued_at_ms=later))])  # no id
    assert machine.stats().request_ids == 0


def test_the_replies_kept_for_retries_stay_bounded_in_bytes() -> None:
    table = RequestLog()
    reply = b"r" * (10 * 1024 * 1024)  # a large transaction reply
    for i in range(8):
        outcome = Outcome(Status.OK, i + 1, detail=reply)
        table.record(RequestRecord(f"txn-{i}", i + 1, 1000, outcome), log_clock_ms=1000)
    kept = [record.request_id for record in table]
    assert sum(len(r.outcome.detail) for r in table) <= DEDUP_MAX_REPLY_BYTES
    assert kept == [f"txn-{i}" for i in range(8 - len(kept), 8)], "the oldest go first"
    assert "txn-7" in kept
