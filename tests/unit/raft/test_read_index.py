"""ReadIndex's rules with a fake Raft node: a read is released only after a majority of the
leader's term has answered a probe sent after the read arrived, and only once the node
has applied up to the index noted when the round began."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvnode.raft.read_index import READ_ACK, READ_INDEX, READ_INDEX_REPLY, READ_PROBE, ReadIndex


@dataclass
class FakeRaft:
    term: int = 3
    leading: bool = True
    leader: Any = None
    voters: list[str] = field(default_factory=lambda: ["b", "c"])
    commit: int = 10
    current_term_committed: bool = True
    applied: int = 10
    sent: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    def raft_term(self) -> int:
        return self.term

    def is_leader(self) -> bool:
        return self.leading

    def leader_node(self) -> Any | None:
        return self.leader

    def peers(self) -> list[Any]:
        return self.voters

    def commit_index(self) -> int:
        return self.commit

    def committed_in_current_term(self) -> bool:
        return self.current_term_committed

    def applied_index(self) -> int:
        return self.applied

    def send(self, peer: Any, message: dict[str, Any]) -> None:
        self.sent.append((peer, message))


def reader(results: list[str | None]) -> Any:
    return results.append


def one_read(raft: FakeRaft, timeout: float) -> tuple[ReadIndex, list[str | None]]:
    """A ReadIndex over `raft` with one read requested and one tick done; its results."""
    reads = ReadIndex(raft, timeout=timeout)
    results: list[str | None] = []
    reads.request(reader(results))
    reads.tick()
    return reads, results


def probes(raft: FakeRaft) -> list[dict[str, Any]]:
    return [m for _peer, m in raft.sent if m["type"] == READ_PROBE]


def test_a_leader_releases_a_read_after_a_majority_acks_and_the_apply() -> None:
    raft = FakeRaft(applied=8)
    reads = ReadIndex(raft, timeout=1.0)
    results: list[str | None] = []
    reads.request(reader(results))
    reads.request(reader(results))
    reads.tick()
    (probe,) = probes(raft)[:1]
    assert len(probes(raft)) == 2 and probe["term"] == 3  # one round for both reads
    reads.tick()
    assert results == []  # no ack yet
    reads.on_message("b", {"type": READ_ACK, "term": 3, "round": probe["round"]})
    reads.tick()
    assert results == []  # confirmed, but only 8 of 10 applied
    raft.applied = 10
    reads.tick()
    assert results == [None, None]


def test_acks_from_another_term_or_round_do_not_count() -> None:
    raft = FakeRaft()
    reads, results = one_read(raft, timeout=1.0)
    probe = probes(raft)[0]
    reads.on_message("b", {"type": READ_ACK, "term": 2, "round": probe["round"]})
    reads.on_message("b", {"type": READ_ACK, "term": 3, "round": probe["round"] + 1})
    reads.tick()
    assert results == []


def test_a_new_leader_waits_for_a_commit_of_its_own_term() -> None:
    raft = FakeRaft(current_term_committed=False)
    reads, _results = one_read(raft, timeout=1.0)
    assert probes(raft) == []
    raft.current_term_committed = True
    reads.tick()
    assert len(probes(raft)) == 2


def test_a_lone_leader_needs_no_round_and_a_lost_round_fails_the_read() -> None:
    alone = FakeRaft(voters=[])
    reads, results = one_read(alone, timeout=1.0)
    assert results == [None] and alone.sent == []
    raft = FakeRaft()
    reads = ReadIndex(raft, timeout=0.0)
    reads.request(reader(results))
    reads.tick()
    reads.tick()  # the round's deadline has passed without a majority
    assert results == [None, "no_quorum"]


def test_a_leader_that_steps_down_fails_its_rounds() -> None:
    raft = FakeRaft()
    reads, results = one_read(raft, timeout=1.0)
    raft.leading = False
    reads.tick()
    assert results == ["not_leader"]


def test_a_follower_asks_the_leader_and_waits_for_its_own_apply() -> None:
    follower = FakeRaft(leading=False, leader="a", applied=5)
    reads, results = one_read(follower, timeout=1.0)
    ((to, ask),) = follower.sent
    assert to == "a" and ask["type"] == READ_INDEX
    # The leader's side: it answers with the index of a confirmed round.
    leader = FakeRaft(commit=7)
    leading = ReadIndex(leader, timeout=1.0)
    leading.on_message("b", ask)
    leading.tick()
    probe = probes(leader)[0]
    leading.on_message("c", {"type": READ_ACK, "term": 3, "round": probe["round"]})
    ((_to, reply),) = [(p, m) for p, m in leader.sent if m["type"] == READ_INDEX_REPLY]
    assert reply == {"type": READ_INDEX_REPLY, "id": ask["id"], "index": 7}
    reads.on_message("a", reply)
    reads.tick()
    assert results == []  # applied 5 of 7
    follower.applied = 7
    reads.tick()
    assert results == [None]


def test_a_follower_asks_once_for_the_reads_of_one_tick() -> None:
    follower = FakeRaft(leading=False, leader="a", applied=5)
    reads = ReadIndex(follower, timeout=1.0)
    results: list[str | None] = []
    for _ in range(3):
        reads.request(reader(results))
    reads.tick()
    ((_to, ask),) = follower.sent  # one request for the three
    reads.on_message("a", {"type": READ_INDEX_REPLY, "id": ask["id"], "index": 5})
    reads.tick()
    assert results == [None, None, None]
    reads.request(reader(results))
    reads.tick()
    reads.on_message(
        "a", {"type": READ_INDEX_REPLY, "id": follower.sent[-1][1]["id"], "error": "x"}
    )
    assert results == [None, None, None, "x"]


def test_a_follower_acks_probes_of_its_term_only() -> None:
    follower = FakeRaft(leading=False, leader="a")
    reads = ReadIndex(follower, timeout=1.0)
    reads.on_message("a", {"type": READ_PROBE, "term": 2, "round": 1})
    assert follower.sent == []
    reads.on_message("a", {"type": READ_PROBE, "term": 3, "round": 1})
    assert follower.sent == [("a", {"type": READ_ACK, "term": 3, "round": 1})]


def test_a_follower_without_a_leader_fails_at_once() -> None:
    follower = FakeRaft(leading=False, leader=None)
    _reads, results = one_read(follower, timeout=1.0)
    assert results == ["no_leader"]


def test_a_reader_waiting_for_an_apply_that_never_comes_fails_at_its_deadline() -> None:
    follower = FakeRaft(leading=False, leader="a", applied=5)
    reads, results = one_read(follower, timeout=60.0)
    ((_to, ask),) = follower.sent
    reads.on_message("a", {"type": READ_INDEX_REPLY, "id": ask["id"], "index": 9})
    reads.tick()
    assert results == []  # waiting for index 9 to be applied
    reads._applied_waiters = [(i, 0.0, r) for i, _deadline, r in reads._applied_waiters]
    reads.tick()  # its deadline has passed and 9 is still not applied
    assert results == ["no_leader"]
