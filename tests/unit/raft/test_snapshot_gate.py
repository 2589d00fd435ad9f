"""A follower drops a streamed snapshot older than its commit index, whole, and lets newer
ones (and other chunks) through."""

from __future__ import annotations

from kvnode.raft.pysyncobj.snapshot_gate import SnapshotGate
from kvnode.storage.fileformat import KIND_CHECKPOINT, KIND_SNAPSHOT
from kvnode.storage.image import encode_image
from kvnode.storage.keyspace import Keyspace


def snapshot_chunks(index: int, kind: bytes = KIND_SNAPSHOT) -> list[tuple[bytes, bool, bool]]:
    data, _crc = encode_image(kind, index, 3, Keyspace(), b"x" * 200)
    parts = [data[:50], data[50:120], data[120:]]
    return [(part, i == 0, i == len(parts) - 1) for i, part in enumerate(parts)]


def test_a_snapshot_older_than_the_commit_index_is_dropped_whole() -> None:
    gate = SnapshotGate()
    verdicts = [gate.screen(chunk, commit_index=5460) for chunk in snapshot_chunks(4999)]
    assert verdicts == [(True, 4999), (True, None), (True, None)]


def test_a_snapshot_at_or_past_the_commit_index_is_installed() -> None:
    gate = SnapshotGate()
    for index in (5460, 6000):
        verdicts = [gate.screen(chunk, commit_index=5460) for chunk in snapshot_chunks(index)]
        assert verdicts == [(False, None)] * 3


def test_after_a_refusal_the_next_snapshot_is_judged_afresh() -> None:
    gate = SnapshotGate()
    for chunk in snapshot_chunks(10):
        gate.screen(chunk, commit_index=20)
    assert [gate.screen(c, commit_index=20) for c in snapshot_chunks(30)] == [(False, None)] * 3


def test_what_is_not_a_kvnode_snapshot_is_left_to_pysyncobj() -> None:
    gate = SnapshotGate()
    assert gate.screen(None, 10) == (False, None)
    assert gate.screen((b"junk", True, True), 10) == (False, None)
    checkpoint = snapshot_chunks(1, KIND_CHECKPOINT)[0]
    assert gate.screen(checkpoint, 10) == (False, None)
