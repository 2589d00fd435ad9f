"""The state machine's contract, one rule per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvnode import commands
from kvnode.commands import condition
from kvnode.storage.machine import Entry, StateMachine
from kvnode.storage.outcome import Status


@pytest.fixture
def machine(tmp_path: Path) -> StateMachine:
    return StateMachine(tmp_path / "sm")


def put(key: str, value: bytes, at: int = 1000, **kw: object) -> bytes:
    return commands.put(key, value, issued_at_ms=at, **kw)  # type: ignore[arg-type]


def test_revisions_count_write_commands_not_log_entries(machine: StateMachine) -> None:
    first, noop, second = machine.apply(
        [Entry(3, 1, put("k", b"a")), Entry(5, 1, commands.noop()), Entry(7, 1, put("k", b"b"))]
    )
    assert first is not None and first.created and first.revision == 1
    assert noop is not None and noop.log_index == 1  # a no-op takes no revision
    assert second is not None and not second.created and second.revision == 2
    record = machine.read("k")[0]
    assert record is not None
    assert (record.value, record.create_revision, record.mod_revision) == (b"b", 1, 2)
    assert (machine.revision, machine.last_applied) == (2, 7)


@pytest.mark.parametrize(
    ("when", "succeeds"),
    [
        (condition(prev_value=b"old"), True),
        (condition(prev_value=b"other"), False),
        (condition(prev_revision=1), True),
        (condition(prev_revision=2), False),
        (condition(prev_exist=True), True),
        (condition(prev_exist=False), False),
    ],
)
def test_cas_compares_at_apply_time(machine: StateMachine, when: object, succeeds: bool) -> None:
    machine.apply([Entry(3, 1, put("k", b"old"))])
    (outcome,) = machine.apply([Entry(4, 1, put("k", b"new", when=when))])
    assert outcome is not None
    if succeeds:
        assert outcome.status is Status.OK and outcome.revision == 2
        assert machine.read("k")[0].value == b"new"  # type: ignore[union-attr]
    else:
        assert outcome.status is Status.COMPARE_FAILED and outcome.revision == 1
        assert machine.read("k")[0].value == b"old"  # type: ignore[union-attr]
    assert machine.last_applied == 4, "a failed CAS still advances last_applied"


def test_create_only_cas_on_an_absent_key(machine: StateMachine) -> None:
    (outcome,) = machine.apply([Entry(3, 1, put("k", b"v", when=condition(prev_exist=False)))])
    assert outcome is not None and outcome.status is Status.OK and outcome.created


def test_failed_cas_is_still_failed_after_recovery_and_replay(tmp_path: Path) -> None:
    directory = tmp_path / "sm"
    machine = StateMachine(directory)
    machine.apply(
        [
            Entry(3, 1, put("k", b"v1")),
            Entry(4, 1, put("k", b"cas-lost", when=condition(prev_value=b"nope"))),
            Entry(5, 1, put("k", b"v2")),
        ]
    )
    digest = machine.digest()
    machine.close(checkpoint=False)
    recovered = StateMachine(directory)  # replays all three records from the WAL
    assert recovered.read("k")[0].value == b"v2"  # type: ignore[union-attr]
    assert recovered.read("k")[0].mod_revision == 3  # type: ignore[union-attr]
    assert recovered.digest() == digest


def test_redelivered_entries_change_nothing(machine: StateMachine) -> None:
    batch = [Entry(3, 1, put("k", b"v1")), Entry(4, 1, commands.delete("k", issued_at_ms=1))]
    machine.apply(batch)
    digest, stats = machine.digest(), machine.stats()
    assert machine.apply([*batch, Entry(2, 1, put("k", b"stale"))]) == [None, None, None]
    assert machine.digest() == digest and machine.stats() == stats
    assert machine.read("k")[0] is None


def test_delete_reports_not_found_and_conditions(machine: StateMachine) -> None:
    machine.apply([Entry(3, 1, put("k", b"v"))])
    missing, failed, deleted = machine.apply(
        [
            Entry(4, 1, commands.delete("nope", issued_at_ms=1)),
            Entry(5, 1, commands.delete("k", issued_at_ms=1, when=condition(prev_revision=9))),
            Entry(6, 1, commands.delete("k", issued_at_ms=1, when=condition(prev_revision=1))),
        ]
    )
    assert missing is not None and missing.status is Status.NOT_FOUND
    assert failed is not None and failed.status is Status.COMPARE_FAILED and failed.revision == 1
    assert deleted is not None and deleted.status is Status.OK and deleted.revision == 4


def test_ttl_deadline_hides_the_key_and_only_expire_removes_it(machine: StateMachine) -> None:
    machine.apply([Entry(3, 1, put("k", b"v", at=1000, expire_at_ms=2000))])
    assert machine.read("k", now_ms=1999)[0] is not None
    assert machine.read("k", now_ms=2000)[0] is None, "a key past its deadline reads as absent"
    assert machine.stats().keys == 1, "no node deletes on its own"
    machine.apply([Entry(4, 1, commands.expire(1999))])
    assert machine.stats().keys == 1
    machine.apply([Entry(5, 1, commands.expire(2000))])
    assert machine.stats().keys == 0


def test_cas_treats_a_key_past_its_deadline_in_the_log_clock_as_absent(
    machine: StateMachine,
) -> None:
    machine.apply([Entry(3, 1, put("k", b"v", at=1000, expire_at_ms=2000))])
    (outcome,) = machine.apply(
        [Entry(4, 1, put("k", b"w", at=2500, when=condition(prev_value=b"v")))]
    )
    assert outcome is not None and outcome.status is Status.COMPARE_FAILED
    (recreated,) = machine.apply([Entry(5, 1, put("k", b"x", at=2500))])
    assert recreated is not None and recreated.created
    assert machine.read("k", now_ms=2500)[0].create_revision == 3  # type: ignore[union-attr]


@pytest.mark.parametrize("payload", [b"", b"\xff\xfe garbage", commands.noop()[:0]])
def test_undecodable_commands_are_a_deterministic_invalid_outcome(
    tmp_path: Path, payload: bytes
) -> None:
    machine = StateMachine(tmp_path / "sm")
    (outcome,) = machine.apply([Entry(3, 1, payload)])
    assert outcome is not None and outcome.status is Status.INVALID
    assert machine.last_applied == 3
    machine.close(checkpoint=False)
    assert StateMachine(tmp_path / "sm").last_applied == 3


def test_oversized_command_is_invalid_not_a_crash(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "sm", max_record_bytes=1000)
    (outcome,) = machine.apply([Entry(3, 1, put("k", b"x" * 2000))])
    assert outcome is not None and outcome.status is Status.INVALID
    assert machine.read("k")[0] is None


def test_checkpoint_truncates_the_wal_and_recovery_needs_no_replay(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "sm", checkpoint_entries=10)
    for index in range(1, 26):
        machine.apply([Entry(index, 1, put(f"k{index % 7}", b"v"))])
    assert machine.stats().entries_since_checkpoint == 5
    assert machine.stats().wal_bytes < 10 + 6 * 60
    digest = machine.digest()
    machine.close(checkpoint=False)
    recovered = StateMachine(tmp_path / "sm")
    assert recovered.last_applied == 25 and recovered.digest() == digest


def test_snapshot_restore_replaces_the_state_atomically(tmp_path: Path) -> None:
    source = StateMachine(tmp_path / "a")
    source.apply([Entry(i, 2, put(f"k{i}", b"v", expire_at_ms=9000 + i)) for i in range(3, 50)])
    path = source.snapshot(tmp_path / "handoff.snap")
    target = StateMachine(tmp_path / "b")
    target.apply([Entry(3, 1, put("other", b"x"))])
    target.restore(path)
    assert target.last_applied == 49 and target.last_applied_term == 2
    assert target.digest() == source.digest()
    assert target.read("other")[0] is None
    target.close(checkpoint=False)
    assert StateMachine(tmp_path / "b").digest() == source.digest()


def test_digest_differs_when_state_differs(tmp_path: Path) -> None:
    a, b = StateMachine(tmp_path / "a"), StateMachine(tmp_path / "b")
    a.apply([Entry(3, 1, put("k", b"v"))])
    b.apply([Entry(3, 1, put("k", b"w"))])
    assert a.digest() != b.digest()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_checkpoints_are_amortised_against_the_state_size(tmp_path: Path) -> None:
    clock = FakeClock()
    machine = StateMachine(
        tmp_path / "sm", checkpoint_entries=100, checkpoint_seconds=10, monotonic=clock
    )
    machine.apply([Entry(i, 1, put(f"big{i}", b"x" * 200)) for i in range(1, 2001)])
    big = machine.stats().checkpoint_bytes
    assert big > 400_000, "the first checkpoint holds the whole state"
    clock.now += 60
    machine.apply([Entry(i, 1, put("small", b"y")) for i in range(2001, 2201)])
    assert machine.stats().checkpoint_bytes == big, (
        "200 small writes are not worth rewriting a large state, however much time passed"
    )
    machine.apply([Entry(i, 1, put("small", b"y" * 300)) for i in range(2201, 2601)])
    assert machine.stats().entries_since_checkpoint == 0, "a WAL of a quarter triggers it"


def test_a_small_state_is_checkpointed_on_time(tmp_path: Path) -> None:
    clock = FakeClock()
    machine = StateMachine(
        tmp_path / "sm", checkpoint_entries=1000, checkpoint_seconds=10, monotonic=clock
    )
    machine.apply([Entry(3, 1, put("k", b"v"))])
    assert machine.stats().entries_since_checkpoint == 1
    clock.now += 11
    machine.apply([Entry(4, 1, put("k", b"w"))])
    assert machine.stats().entries_since_checkpoint == 0
