"""Pre-vote: a node raises its term only after a majority said it could win."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kvnode.raft.prevote import HAND_OVER, LEADER_STATE, PRE_VOTE, PRE_VOTE_REPLY, PreVote

FOLLOWER = 0


@dataclass
class FakeRaft:
    term: int = 5
    state: int = FOLLOWER
    log: tuple[int, int] = (100, 5)
    others: list[str] = field(default_factory=lambda: ["b", "c"])
    due: bool = True
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    postponed: int = 0
    started: int = 0
    leader_forgotten: bool = False

    def raft_term(self) -> int:
        return self.term

    def raft_state(self) -> int:
        return self.state

    def last_log(self) -> tuple[int, int]:
        return self.log

    def peers(self) -> list[Any]:
        return self.others

    def election_due(self, now: float) -> bool:
        return self.due

    def postpone_election(self, now: float) -> None:
        self.postponed += 1
        self.due = False

    def forget_leader(self) -> None:
        self.leader_forgotten = True

    def start_election_now(self) -> None:
        self.started += 1
        self.due = True

    def send(self, peer: Any, message: dict[str, Any]) -> None:
        self.sent.append((peer, message))


def test_a_due_election_first_asks_for_pre_votes_and_keeps_the_term() -> None:
    raft = FakeRaft()
    PreVote(raft, 0.4).before_tick()
    assert raft.postponed == 1 and raft.term == 5 and raft.started == 0
    assert raft.leader_forgotten, "a leader unheard for an election timeout is not known"
    assert [(peer, m["type"], m["term"]) for peer, m in raft.sent] == [
        ("b", PRE_VOTE, 6),
        ("c", PRE_VOTE, 6),
    ]


def test_a_majority_of_grants_lets_the_real_election_start() -> None:
    raft = FakeRaft()
    prevote = PreVote(raft, 0.4)
    prevote.before_tick()
    prevote.on_reply({"type": PRE_VOTE_REPLY, "term": 6, "granted": True})
    assert raft.started == 1
    postponed = raft.postponed
    prevote.before_tick()  # PySyncObj's tick runs the election now
    assert raft.postponed == postponed


def test_refusals_or_stale_replies_start_nothing() -> None:
    raft = FakeRaft()
    prevote = PreVote(raft, 0.4)
    prevote.before_tick()
    prevote.on_reply({"type": PRE_VOTE_REPLY, "term": 6, "granted": False})
    prevote.on_reply({"type": PRE_VOTE_REPLY, "term": 4, "granted": True})
    assert raft.started == 0


def request(term: int = 6, index: int = 100, log_term: int = 5) -> dict[str, Any]:
    return {"type": PRE_VOTE, "term": term, "last_log_index": index, "last_log_term": log_term}


def granted(raft: FakeRaft) -> bool:
    _peer, reply = raft.sent[-1]
    assert reply["type"] == PRE_VOTE_REPLY
    return bool(reply["granted"])


def test_a_node_that_hears_a_leader_or_is_one_refuses() -> None:
    raft = FakeRaft()
    prevote = PreVote(raft, 60.0)
    prevote.on_request("b", request())
    assert granted(raft), "no leader heard yet: the asker may win"
    prevote.heard_from_leader()
    prevote.on_request("b", request())
    assert not granted(raft)
    leader = FakeRaft(state=LEADER_STATE)
    PreVote(leader, 0.4).on_request("b", request())
    assert not granted(leader)


def test_a_less_complete_log_or_an_old_term_is_refused() -> None:
    raft = FakeRaft()
    prevote = PreVote(raft, 0.4)
    prevote.on_request("b", request(index=99))
    assert not granted(raft)
    prevote.on_request("b", request(log_term=4, index=500))
    assert not granted(raft)
    prevote.on_request("b", request(term=5))
    assert not granted(raft)
    prevote.on_request("b", request(log_term=6, index=1))
    assert granted(raft)


def vote_request(term: int, **mark: bool) -> dict[str, Any]:
    return {"type": "request_vote", "term": term, "last_log_index": 100, "last_log_term": 5, **mark}


def test_a_vote_request_is_ignored_while_a_live_leader_is_known() -> None:
    """Leader stickiness: without it, one stray request_vote moves the term."""
    raft = FakeRaft()
    prevote = PreVote(raft, 60.0)
    assert not prevote.ignores_vote_request(vote_request(10**6)), "no leader heard yet"
    prevote.heard_from_leader()
    assert prevote.ignores_vote_request(vote_request(10**6))
    assert not prevote.ignores_vote_request(vote_request(5)), "PySyncObj refuses a stale term"
    assert PreVote(FakeRaft(state=LEADER_STATE), 0.4).ignores_vote_request(vote_request(6))


def test_only_the_election_a_leader_asked_for_passes_and_only_one_term_up() -> None:
    raft = FakeRaft()
    prevote = PreVote(raft, 60.0)
    prevote.heard_from_leader()
    assert not prevote.ignores_vote_request(vote_request(6, **{HAND_OVER: True}))
    assert prevote.ignores_vote_request(vote_request(7, **{HAND_OVER: True}))


def test_the_vote_requests_of_a_handed_over_election_carry_the_mark() -> None:
    raft = FakeRaft()
    prevote = PreVote(raft, 0.4)
    own = vote_request(6)
    prevote.mark_vote_request(own)
    assert HAND_OVER not in own, "an election of its own timer is not a hand-over"
    prevote.leader_hands_over()
    own = vote_request(6)
    prevote.mark_vote_request(own)
    assert own.get(HAND_OVER) is True
