"""A batch entry applies its commands as if each were an entry of its own: in order, each
at its own revision with its own outcome, exactly once per request id, and the same
again on WAL replay."""

from __future__ import annotations

from pathlib import Path

from kvnode import commands
from kvnode.storage.machine import Entry, StateMachine
from kvnode.storage.outcome import Status


def put(key: str, value: bytes, request_id: str = "", **kw: object) -> bytes:
    return commands.put(key, value, issued_at_ms=1000, request_id=request_id, **kw)  # type: ignore[arg-type]


def test_each_command_of_a_batch_has_its_own_revision_and_outcome(tmp_path: Path) -> None:
    machine = StateMachine(tmp_path / "sm")
    batch = commands.batch(
        [
            put("a", b"1", "r1"),
            put("a", b"2", when=commands.condition(prev_value=b"1")),
            put("a", b"3", when=commands.condition(prev_value=b"1")),  # sees the 2: fails
            b"\xff not a command",
            commands.batch([put("nested", b"x")]),  # a batch inside a batch is refused
            commands.delete("a", issued_at_ms=1000),
        ]
    )
    (outcome,) = machine.apply([Entry(5, 1, batch)])
    assert outcome is not None and outcome.status is Status.OK
    first, cas_ok, cas_failed, garbage, nested, deleted = outcome.parts
    assert (first.status, first.revision, first.created) == (Status.OK, 1, True)
    assert (cas_ok.status, cas_ok.revision) == (Status.OK, 2)
    assert (cas_failed.status, cas_failed.revision) == (Status.COMPARE_FAILED, 2)
    assert garbage.status is Status.INVALID and nested.status is Status.INVALID
    assert (deleted.status, deleted.revision) == (Status.OK, 4)
    assert [p.log_index for p in outcome.parts] == [1, 2, 3, 3, 3, 4]
    assert machine.read("a")[0] is None and machine.read("nested")[0] is None
    assert (machine.revision, machine.last_applied) == (4, 5)
    # A retry of r1 in a later batch gets r1's first outcome and changes nothing.
    (later,) = machine.apply([Entry(6, 1, commands.batch([put("a", b"1", "r1"), put("b", b"y")]))])
    assert later is not None
    retry, other = later.parts
    assert (retry.status, retry.revision, retry.created) == (Status.OK, 1, True)
    assert other.revision == 5 and machine.read("a")[0] is None
    digest = machine.digest()
    machine.close(checkpoint=False)
    replayed = StateMachine(tmp_path / "sm")  # both batches again, from the WAL
    assert (replayed.digest(), replayed.revision) == (digest, 5)
