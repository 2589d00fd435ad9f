"""Raft §5.3 on the follower: an append changes the log only from the first conflicting
entry, acknowledges only what it covered, and a conflict with a committed entry stops
the node. First the plan alone, then a real node (PySyncObj underneath) fed the messages
a leader would send, checked in memory and in its journal file."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pysyncobj.transport import TCPTransport

from kvnode.config import NodeConfig
from kvnode.raft.follower_append import Entry, plan_append
from kvnode.raft.leader_match import answers_another_term
from kvnode.raft.pysyncobj import peer_pickle
from kvnode.raft.pysyncobj import transport as transport_module
from kvnode.raft.pysyncobj.adapter import make_node
from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.raft.pysyncobj.node import RaftNode
from kvnode.storage.layout import STATE_MACHINE_DIR
from kvnode.storage.machine import StateMachine
from tests.waiting import wait_until_sync

LEADER_TERM = 7


def log_of(*terms: int, first: int = 1) -> dict[int, int]:
    return {first + i: term for i, term in enumerate(terms)}


def entries(first: int, *terms: int) -> list[Entry]:
    return [(f"c{first + i}".encode(), first + i, term) for i, term in enumerate(terms)]


def plan_for(log: dict[int, int], prev: int, prev_term: int, sent: list[Entry]) -> Any:
    return plan_append(log.get, max(log), prev, prev_term, sent)


def test_a_duplicate_append_skips_every_entry_and_cuts_nothing() -> None:
    log = log_of(1, 1, 1, 1, 1)
    plan = plan_for(log, 2, 1, entries(3, 1, 1, 1))
    assert (plan.entries, plan.conflict) == ([], None)
    assert (plan.prev_index, plan.acknowledge) == (5, 5)


def test_an_older_shorter_append_acknowledges_only_what_it_covered() -> None:
    log = log_of(1, 1, 1, 1, 1, 1, 1)
    plan = plan_for(log, 2, 1, entries(3, 1, 1))
    assert (plan.entries, plan.conflict) == ([], None)
    assert plan.prev_index == 7  # nothing after it to cut
    assert (plan.acknowledge, plan.commit_bound) == (4, 4)


def test_a_conflicting_append_truncates_from_the_conflict_only() -> None:
    log = log_of(1, 1, 1, 2, 2, 2)
    plan = plan_for(log, 2, 1, entries(3, 1, 3, 3))
    assert plan.conflict == 4
    assert (plan.prev_index, plan.prev_term) == (3, 1)
    assert plan.entries == entries(4, 3, 3)
    assert plan.acknowledge == 5


def test_new_entries_after_held_ones_are_appended() -> None:
    plan = plan_for(log_of(1, 1, 1), 1, 1, entries(2, 1, 1, 1, 1))
    assert (plan.prev_index, plan.entries, plan.conflict) == (3, entries(4, 1, 1), None)


@pytest.mark.parametrize(("prev", "prev_term"), [(9, 1), (2, 5)])
def test_a_missing_or_mismatched_previous_entry_is_left_to_refuse(
    prev: int, prev_term: int
) -> None:
    assert plan_for(log_of(1, 1, 1), prev, prev_term, entries(prev + 1, 5)) is None


# -- a real follower ---------------------------------------------------------------------


class Delivery:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: Exception | None = None


class Stopped(Exception):
    pass


class Follower:
    """A RaftNode whose peers never answer, fed append-entries in its own tick thread (as
    its transport would deliver them); its replies are recorded instead of sent."""

    def __init__(self, node: RaftNode, replies: list[dict[str, Any]]) -> None:
        self.node = node
        self.replies = replies
        self.leader = make_node(node.kv_config.peers[0])
        self._inbox: queue.Queue[tuple[dict[str, Any], Delivery]] = queue.Queue()
        node.addOnTickCallback(self._deliver)

    def _deliver(self) -> None:
        while not self._inbox.empty():
            message, delivery = self._inbox.get_nowait()
            try:
                self.node.transport()._onMessageReceived(self.leader, message)
            except Exception as exc:
                delivery.error = exc
            finally:
                delivery.done.set()

    def deliver(
        self, prev: int, prev_term: int, sent: list[Entry], commit: int, **extra: Any
    ) -> Delivery:
        message = {
            **extra,
            "type": "append_entries",
            "term": LEADER_TERM,
            "commit_index": commit,
            "entries": sent,
            "prevLogIdx": prev,
            "prevLogTerm": prev_term,
        }
        delivery = Delivery()
        self._inbox.put((message, delivery))
        assert delivery.done.wait(10), "the tick thread did not deliver the message"
        return delivery

    def append(self, prev: int, prev_term: int, sent: list[Entry], commit: int = 1) -> Any:
        """Deliver one append; the reply it got (after the journal sync it waits for)."""
        replied = len(self.replies)
        delivery = self.deliver(prev, prev_term, sent, commit)
        assert delivery.error is None, delivery.error
        return wait_until_sync(lambda: self.replies[replied:], 10, "the follower's reply")[0]

    def log(self) -> list[tuple[int, int]]:
        return [(index, term) for _command, index, term in self.node.journal[:]]

    def journal_file(self) -> list[tuple[int, int]]:
        """What a restart would read back from the journal file."""
        self.node.journal.sync_now()
        directory = Path(self.node.kv_config.data_dir)
        reread = DurableJournal(directory, durable=False, dump_file=directory / "dump")
        return [(index, term) for _command, index, term in reread[:]]


@pytest.fixture
def follower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Follower]:
    replies: list[dict[str, Any]] = []

    def recording_send(_self: TCPTransport, _node: object, message: dict[str, Any]) -> bool:
        if message.get("type") == "next_node_idx":
            replies.append(message)
        return True

    monkeypatch.setattr(TCPTransport, "send", recording_send)
    config = NodeConfig(
        raft_addr="127.0.0.1:1",  # never bound: the peer port is not needed here
        peers=("127.0.0.1:2", "127.0.0.1:3"),
        data_dir=tmp_path,
        cluster_secret="s",
        fork_snapshots=False,
    )
    monkeypatch.setattr(
        TCPTransport, "_createServer", lambda self: self.mark_ready_without_server()
    )
    machine = StateMachine(tmp_path / STATE_MACHINE_DIR, fsync=False)
    node = RaftNode(config, machine)
    try:
        yield Follower(node, replies)
    finally:
        node.destroy()


def test_a_real_follower_keeps_what_it_acknowledged(follower: Follower) -> None:
    first = follower.append(1, 0, entries(2, 5, 5, 5, 5, 5))
    assert first["success"] and first["next_node_idx"] == 7
    held = [(1, 0), (2, 5), (3, 5), (4, 5), (5, 5), (6, 5)]
    assert follower.log() == held
    generation = follower.node.journal.generation

    duplicate = follower.append(1, 0, entries(2, 5, 5, 5, 5, 5))
    assert duplicate["success"] and duplicate["next_node_idx"] == 7
    older_shorter = follower.append(2, 5, entries(3, 5, 5))
    assert older_shorter["success"] and older_shorter["next_node_idx"] == 5
    heartbeat_behind = follower.append(3, 5, [])
    assert heartbeat_behind["success"] and heartbeat_behind["next_node_idx"] == 4
    assert follower.log() == held
    assert follower.journal_file() == held
    assert follower.node.journal.generation == generation  # no write at all

    conflict = follower.append(3, 5, entries(4, LEADER_TERM, LEADER_TERM))
    assert conflict["success"] and conflict["next_node_idx"] == 6
    replaced = [(1, 0), (2, 5), (3, 5), (4, LEADER_TERM), (5, LEADER_TERM)]
    assert follower.log() == replaced
    assert follower.journal_file() == replaced


def test_a_reply_names_the_term_it_answers(follower: Follower) -> None:
    """The leader drops a reply of another term (leader_match.answers_another_term)."""
    reply = follower.append(1, 0, entries(2, 5))
    assert reply["success"] and reply["term"] == LEADER_TERM
    assert not answers_another_term(reply, LEADER_TERM)
    assert answers_another_term(reply, LEADER_TERM + 1)  # the leader was elected again
    assert not answers_another_term({"type": "next_node_idx", "next_node_idx": 3}, 9)


def test_a_commit_index_is_learnt_only_up_to_what_the_message_covered(
    follower: Follower,
) -> None:
    follower.append(1, 0, entries(2, 5, 5, 5, 5, 5), commit=1)
    follower.append(2, 5, entries(3, 5), commit=6)  # covers 3 only
    assert follower.node.raftCommitIndex == 3
    follower.append(3, 5, [], commit=2)  # a lower commit index never moves it back
    assert follower.node.raftCommitIndex == 3


def test_a_conflict_with_a_committed_entry_stops_the_node(
    follower: Follower, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[str] = []

    def recording_fail_stop(reason: str) -> None:
        stopped.append(reason)
        raise Stopped(reason)

    monkeypatch.setattr(transport_module, "fail_stop", recording_fail_stop)
    follower.append(1, 0, entries(2, 5, 5, 5), commit=3)
    assert follower.node.raftCommitIndex == 3
    refused = follower.deliver(2, 5, entries(3, LEADER_TERM), commit=3)
    assert isinstance(refused.error, Stopped)
    assert "log entries from index 3" in stopped[0] and "truncating" in stopped[0]
    assert follower.log() == [(1, 0), (2, 5), (3, 5), (4, 5)]


def test_a_large_entry_sent_in_pieces_is_appended_once_whole(follower: Follower) -> None:
    """PySyncObj may mark a piece "finish" before the last one; that piece keeps collecting."""
    follower.append(1, 0, entries(2, 5))
    large = (b"x" * 1000, 3, 5)
    encoded = peer_pickle.dumps(large)
    pieces = [("start", encoded[:400]), ("finish", encoded[400:800]), ("finish", encoded[800:])]
    for transmission, data in pieces:
        delivery = follower.deliver(2, 5, [], commit=1, transmission=transmission, data=data)
        assert delivery.error is None
    assert follower.log() == [(1, 0), (2, 5), (3, 5)]
    assert follower.node.journal[-1][0] == large[0]
