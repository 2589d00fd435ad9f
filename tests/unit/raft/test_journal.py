"""The durable Raft journal: what PySyncObj appends survives, damage is detected."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.storage.errors import CorruptFile, CorruptRecord, NotKvnodeFile


def open_journal(directory: Path) -> DurableJournal:
    return DurableJournal(directory, durable=True, dump_file=directory / "raft.snapshot")


def filled(directory: Path, count: int = 5) -> DurableJournal:
    journal = open_journal(directory)
    for idx in range(1, count + 1):
        journal.add(f"cmd{idx}".encode(), idx, 1 + idx // 3)
    journal.setCurrentTerm(4, "127.0.0.1:1")
    journal.setRaftCommitIndex(count)
    journal._destroy()
    return journal


def test_entries_term_vote_and_commit_index_survive_reopening(tmp_path: Path) -> None:
    filled(tmp_path)
    journal = open_journal(tmp_path)
    assert [e[1] for e in journal[:]] == [1, 2, 3, 4, 5]
    assert journal[-1] == (b"cmd5", 5, 2)
    assert journal.getCurrentTerm() == 4
    assert journal.getVotedForNodeId() == "127.0.0.1:1"
    assert journal.getRaftCommitIndex() == 5


def test_truncated_tail_is_dropped_and_commit_index_clamped(tmp_path: Path) -> None:
    filled(tmp_path)
    path = tmp_path / "raft.journal"
    path.write_bytes(path.read_bytes()[:-3])
    journal = open_journal(tmp_path)
    assert len(journal) == 4
    assert journal.getRaftCommitIndex() == 4, "commit index may not point past the journal"


def test_damage_in_the_middle_refuses_to_start(tmp_path: Path) -> None:
    filled(tmp_path)
    path = tmp_path / "raft.journal"
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRecord):
        open_journal(tmp_path)


def test_unreadable_term_and_vote_refuse_to_start(tmp_path: Path) -> None:
    filled(tmp_path)
    meta = tmp_path / "raft.meta"
    data = bytearray(meta.read_bytes())
    data[12] ^= 0x01
    meta.write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match=r"at offset \d+: checksum mismatch, term and vote"):
        open_journal(tmp_path)


def test_a_foreign_journal_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "raft.journal").write_bytes(b"PYSYNCOBJ\x00" * 4)
    with pytest.raises(NotKvnodeFile):
        open_journal(tmp_path)


def test_suffix_deletion_and_compaction_are_durable(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    journal.setCurrentTerm(2, None)
    for idx in range(1, 11):
        journal.add(b"x" * idx, idx, 1)
    journal.deleteEntriesFrom(7)  # drop idx 8..10 (a conflicting suffix)
    journal.add(b"new", 8, 2)
    journal.deleteEntriesTo(3)  # compaction: keep idx 4..8
    (tmp_path / "raft.snapshot").touch()  # the snapshot PySyncObj wrote before compacting
    journal.add(b"after", 9, 2)
    journal._destroy()
    reopened = open_journal(tmp_path)
    assert [(e[1], e[2]) for e in reopened[:]] == [(4, 1), (5, 1), (6, 1), (7, 1), (8, 2), (9, 2)]
    assert reopened[-2][0] == b"new"


def test_compaction_keeps_trailing_entries_and_a_restart_starts_at_the_snapshot(
    tmp_path: Path,
) -> None:
    journal = DurableJournal(
        tmp_path, durable=True, dump_file=tmp_path / "dump", trailing_entries=3
    )
    (tmp_path / "dump").touch()  # the snapshot PySyncObj wrote before compacting
    for idx in range(1, 21):
        journal.add(b"c%d" % idx, idx, 1)
    journal.deleteEntriesTo(9)  # PySyncObj: a snapshot at index 10 (kept from position 9)
    assert [e[1] for e in journal[:]] == list(range(7, 21))  # 3 trailing entries before it
    journal.setCurrentTerm(1, None)
    journal._destroy()
    reopened = DurableJournal(
        tmp_path, durable=True, dump_file=tmp_path / "dump", trailing_entries=3
    )
    reopened.start_at_snapshot(10)  # where PySyncObj expects the snapshot's two entries
    assert [e[1] for e in reopened[:]] == list(range(9, 21))
    again = DurableJournal(tmp_path, durable=True, dump_file=tmp_path / "dump")
    assert [e[1] for e in again[:]] == list(range(9, 21))  # the trim is on disk


def test_a_missing_journal_is_refused_once_the_meta_file_exists(tmp_path: Path) -> None:
    filled(tmp_path)
    (tmp_path / "raft.journal").unlink()
    with pytest.raises(CorruptFile, match=r"missing while raft\.meta exists"):
        open_journal(tmp_path)


def test_a_compacted_journal_without_its_snapshot_is_refused(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    (tmp_path / "raft.snapshot").touch()
    for idx in range(1, 21):
        journal.add(b"c%d" % idx, idx, 1)
    journal.deleteEntriesTo(9)
    journal.setCurrentTerm(1, None)
    journal._destroy()
    assert open_journal(tmp_path)[0][1] == 10
    (tmp_path / "raft.snapshot").unlink()
    with pytest.raises(CorruptFile, match=r"missing while raft\.journal starts at entry 10"):
        open_journal(tmp_path)


def test_an_emptied_journal_without_a_snapshot_is_refused(tmp_path: Path) -> None:
    filled(tmp_path)
    journal = open_journal(tmp_path)
    journal.clear()
    journal._destroy()
    with pytest.raises(CorruptFile, match="committed up to 5"):
        open_journal(tmp_path)


def test_compaction_keeps_no_more_trailing_bytes_than_asked(tmp_path: Path) -> None:
    (tmp_path / "raft.snapshot").touch()
    journal = DurableJournal(
        tmp_path,
        durable=False,
        dump_file=tmp_path / "raft.snapshot",
        trailing_entries=10,
        trailing_bytes=2500,
    )
    for idx in range(1, 21):
        journal.add(b"x" * 1000, idx, 1)  # a frame a little over 1000 bytes
    before = journal.live_bytes
    journal.deleteEntriesTo(15)
    assert journal[0][1] == 14  # two trailing entries fit in 2500 bytes, not ten
    assert journal.live_bytes < before
