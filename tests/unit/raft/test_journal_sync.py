"""The journal's fsync off the tick thread: acknowledgements wait for it, the leader's own
copy counts only once synced, and a truncation during a sync is never taken as synced."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pysyncobj.transport import TCPTransport

from kvnode.raft.commit_notice import CommitNotice
from kvnode.raft.journal_sync import JournalSyncer
from kvnode.raft.leader_match import LeaderMatch
from kvnode.raft.outbox import Outbox
from kvnode.raft.pysyncobj import journal as journal_module
from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.raft.pysyncobj.transport import SyncedTransport


def open_journal(directory: Path) -> DurableJournal:
    return DurableJournal(directory, durable=True, dump_file=directory / "raft.snapshot")


class RecordingSyncer:
    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1


@pytest.fixture
def order(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fdatasync and every message that really leaves, in order."""
    events: list[str] = []
    real_fdatasync = os.fdatasync

    def recording_fdatasync(fd: int) -> None:
        events.append("fsync")
        real_fdatasync(fd)

    def recording_send(_self: TCPTransport, node: object, message: dict[str, Any]) -> bool:
        events.append(f"send {message['type']} to {node}")
        return True

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    monkeypatch.setattr(TCPTransport, "send", recording_send)
    return events


def transport_for(journal: DurableJournal, syncer: Any) -> Any:
    bound = SyncedTransport.bind_journal(journal, syncer)
    transport = bound.__new__(bound)  # no sockets needed: only send() is exercised
    transport._outbox = Outbox()
    transport._acknowledge_limit = {}
    transport._unanswered_since, transport.ack_timings = {}, {}
    transport._connections = {}
    transport._syncObj = SimpleNamespace(
        encryptor=None,
        machine=SimpleNamespace(cluster_id=""),
        prevote=SimpleNamespace(mark_vote_request=lambda message: None),
        commit_notice=CommitNotice(),
        raftCurrentTerm=1,
    )
    return transport


def test_acknowledgements_and_votes_wait_for_the_fsync_and_keep_their_order(
    tmp_path: Path, order: list[str]
) -> None:
    journal, syncer = open_journal(tmp_path), RecordingSyncer()
    order.clear()  # opening syncs what an earlier process may have left in the page cache
    transport = transport_for(journal, syncer)
    journal.add(b"a", 1, 1)
    journal.add(b"b", 2, 1)
    transport.send("leader", {"type": "next_node_idx"})  # vouches for entries 1 and 2
    transport.send("leader", {"type": "apply_command"})  # needs nothing, but comes after
    transport.send("other", {"type": "append_entries"})  # another peer: not held back
    transport.release_synced()  # nothing synced yet: nothing released
    assert order == ["send append_entries to other"]
    assert syncer.requests >= 1

    journal.sync_now()
    transport.release_synced()
    assert order[1:] == [
        "fsync",
        "send next_node_idx to leader",
        "send apply_command to leader",
    ]
    transport.send("leader", {"type": "next_node_idx"})  # nothing new: no fsync needed
    assert order[-1] == "send next_node_idx to leader"

    journal.add(b"c", 3, 1)
    transport.send("other", {"type": "request_vote"})
    assert order[-1] == "send next_node_idx to leader"
    journal.sync_now()
    transport.release_synced()
    assert order[-2:] == ["fsync", "send request_vote to other"]
    journal.sync_now()  # nothing changed since: no second fsync
    assert order.count("fsync") == 2


def test_a_disconnected_peer_loses_what_was_held_for_it(tmp_path: Path, order: list[str]) -> None:
    journal = open_journal(tmp_path)
    outbox = Outbox()
    journal.add(b"a", 1, 1)
    outbox.hold("gone", journal.generation, {"type": "next_node_idx"})
    outbox.drop("gone")
    journal.sync_now()
    outbox.release(journal.synced_generation, lambda node, message: order.append("sent"))
    assert "sent" not in order and not outbox


def test_a_peer_that_disconnects_while_its_messages_are_released_is_dropped_cleanly() -> None:
    """Seen in the membership test: a send found the connection dead, PySyncObj's disconnect
    callback dropped the peer's queue inside `release`, and the KeyError that followed
    ended the tick thread."""
    outbox = Outbox()
    for number in range(3):
        outbox.hold("gone", 1, {"type": "next_node_idx", "n": number})
    outbox.hold("alive", 1, {"type": "next_node_idx", "n": 0})
    sent: list[tuple[str, int]] = []

    def send(node: str, message: dict[str, Any]) -> None:
        sent.append((node, message["n"]))
        if node == "gone":
            outbox.drop(node)  # what the transport's disconnect callback does

    outbox.release(1, send)
    assert sent == [("gone", 0), ("alive", 0)] and not outbox


def test_the_background_thread_syncs_and_wakes_the_tick_loop(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    woken = threading.Event()
    syncer = JournalSyncer(journal, on_synced=woken.set)
    syncer.start()
    try:
        journal.add(b"a", 1, 1)
        journal.add(b"b", 2, 1)
        assert journal.unsynced and journal.synced_index == 0
        syncer.request()
        assert woken.wait(10)
        assert not journal.unsynced and journal.synced_index == 2
    finally:
        syncer.stop()


def test_a_truncation_during_a_sync_is_not_counted_as_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower's sync of entries 1..3 runs while a new leader's entries replace 2..3:
    the replacements were not part of that sync, so the synced index stays at 1."""
    journal = open_journal(tmp_path)
    journal.add(b"old", 1, 1)
    journal.sync_now()
    journal.add(b"old", 2, 1)
    journal.add(b"old", 3, 1)
    real_fdatasync = os.fdatasync

    def truncating_fdatasync(fd: int) -> None:
        journal.deleteEntriesFrom(1)  # the tick thread, while this sync is under way
        journal.add(b"new", 2, 2)
        journal.add(b"new", 3, 2)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", truncating_fdatasync)
    journal.sync_now()
    assert journal.synced_index == 1
    assert journal.unsynced  # the replacement entries still need their own sync
    monkeypatch.setattr(os, "fdatasync", real_fdatasync)
    journal.sync_now()
    assert journal.synced_index == 3 and not journal.unsynced


def compacted_journal(directory: Path, tasks: list[Callable[[], None]]) -> DurableJournal:
    """Entries 1..10, compacted to 6..10: the file rewrite is queued in `tasks`."""
    journal = open_journal(directory)
    journal.run_later = lambda task, _what: tasks.append(task)
    journal.setCurrentTerm(1, None)
    for index in range(1, 11):
        journal.add(f"cmd{index}".encode(), index, 1)
    journal.sync_now()
    (directory / "raft.snapshot").touch()  # the snapshot at 5 that PySyncObj wrote first
    journal.deleteEntriesTo(5)  # the tick thread, after a snapshot at 5: memory only
    assert [entry[1] for entry in journal[:]] == [6, 7, 8, 9, 10] and len(tasks) == 1
    return journal


def rewrite_while(
    task: Callable[[], None],
    meanwhile: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run the queued rewrite `task`, with `meanwhile` (the tick thread's doings) happening
    while the live part is copied, before the lock is taken for the swap."""
    real_write_temporary = journal_module.write_temporary

    def copying(*args: Any, **kwargs: Any) -> Path:
        meanwhile()
        return real_write_temporary(*args, **kwargs)

    monkeypatch.setattr(journal_module, "write_temporary", copying)
    task()


def test_compaction_rewrites_the_file_in_the_sync_thread_while_entries_are_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks: list[Callable[[], None]] = []
    journal = compacted_journal(tmp_path, tasks)

    def append_two() -> None:
        journal.add(b"cmd11", 11, 1)
        journal.add(b"cmd12", 12, 1)

    size_before = journal.size_bytes
    rewrite_while(tasks.pop(), append_two, monkeypatch)
    assert journal.size_bytes < size_before  # entries 1..5 left the file
    assert journal.synced_index == 10 and journal.unsynced  # 11, 12: copied, not synced
    journal.sync_now()
    assert journal.synced_index == 12
    journal.add(b"cmd13", 13, 1)
    journal._destroy()
    reopened = open_journal(tmp_path)
    assert [(entry[0], entry[1]) for entry in reopened[:]] == [
        (f"cmd{index}".encode(), index) for index in range(6, 14)
    ]


def test_a_truncation_during_the_rewrite_abandons_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks: list[Callable[[], None]] = []
    journal = compacted_journal(tmp_path, tasks)

    def replace_the_last_two() -> None:  # a new leader's entries replace 9 and 10
        journal.deleteEntriesFrom(3)
        journal.add(b"new9", 9, 2)

    rewrite_while(tasks.pop(), replace_the_last_two, monkeypatch)
    journal._destroy()
    reopened = open_journal(tmp_path)  # the dead head is still there until a later rewrite
    assert [(entry[1], entry[2]) for entry in reopened[:]][-5:] == [
        (5, 1),
        (6, 1),
        (7, 1),
        (8, 1),
        (9, 2),
    ]
    assert not list(tmp_path.glob("*.tmp"))


def test_the_leader_counts_its_own_copy_only_up_to_its_synced_index() -> None:
    leader = LeaderMatch()
    match_index = {"b": 0, "c": 0}
    match_index["b"] = 9  # PySyncObj recorded b's acknowledgement of 9
    leader.after_reply("b", match_index, term=4, synced=6)
    assert match_index["b"] == 6  # the leader has synced only up to 6
    assert leader.reported("b") == 9
    match_index["b"] = 7  # an older, overtaken acknowledgement: never lowers what b holds
    leader.after_reply("b", match_index, term=4, synced=6)
    assert leader.reported("b") == 9 and match_index["b"] == 6
    leader.after_sync(match_index, term=4, synced=12)
    assert match_index == {"b": 9, "c": 0}
    leader.forget("b")  # disconnected
    match_index["b"] = 0
    leader.after_sync(match_index, term=4, synced=12)
    assert match_index["b"] == 0
    leader.after_reply("c", match_index, term=4, synced=12)
    assert leader.reported("c") == 0  # c acknowledged nothing yet
    match_index["c"] = 8
    leader.after_reply("c", match_index, term=4, synced=12)
    leader.forget_all()  # c removed and added again: PySyncObj starts it from 0
    match_index["c"] = 0
    leader.after_sync(match_index, term=4, synced=12)
    assert match_index["c"] == 0


def test_a_new_leadership_starts_from_what_pysyncobj_knows() -> None:
    leader = LeaderMatch()
    match_index = {"b": 9}
    leader.after_reply("b", match_index, term=4, synced=20)
    match_index["b"] = 0  # PySyncObj resets every matchIndex when a node becomes leader
    leader.after_sync(match_index, term=6, synced=20)
    assert match_index["b"] == 0 and leader.reported("b") == 0


def test_a_clear_before_the_rewrite_empties_the_file_of_forgotten_entries_too(
    tmp_path: Path,
) -> None:
    """A snapshot installed from the leader clears the journal. Entries compaction forgot but
    had not rewritten away yet must go too: kept ahead of the snapshot's entries (other
    indexes), they would make the journal unreadable at the next start."""
    tasks: list[Callable[[], None]] = []
    journal = compacted_journal(tmp_path, tasks)  # 1..5 forgotten, still in the file
    journal.clear()
    journal.add(b"snap-prev", 19, 2)
    journal.add(b"snap-last", 20, 2)
    journal._destroy()
    reopened = open_journal(tmp_path)
    assert [(entry[1], entry[2]) for entry in reopened[:]] == [(19, 2), (20, 2)]


def test_what_leaves_tells_the_commit_notice_what_each_follower_knows_and_awaits(
    tmp_path: Path, order: list[str]
) -> None:
    transport = transport_for(open_journal(tmp_path), RecordingSyncer())
    notice = transport._syncObj.commit_notice
    transport.send("b", {"type": "append_entries", "term": 1, "commit_index": 7})
    transport.send("c", {"type": "append_entries", "term": 1, "commit_index": 7})
    assert not notice.due(7, ["b", "c"], now=1.0)  # both were sent 7 already
    # b forwarded a write, now at index 9; c was given read index 8.
    transport.send("b", {"type": "apply_command_response", "request_id": 1, "log_idx": 9})
    transport.send("c", {"type": "kv_read_index_reply", "id": 5, "index": 8})
    assert notice.due(8, ["b", "c"], now=1.0)  # c waits for 8: at once
    assert not notice.due(8, ["b", "c"], now=1.0)
    assert notice.due(9, ["b", "c"], now=1.0)  # b waits for 9
