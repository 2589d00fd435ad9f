"""Pre-vote (Raft thesis §9.6): a node asks whether it could win before it raises its term.

PySyncObj starts an election the moment a follower's timer runs out: it raises
its term and asks for votes, and any node that sees the higher term steps down.
A follower that restarts, or that was cut off and comes back, so deposes a
healthy leader every time (terms 1 to 3, 8 to 10 on each restart; 23 to 25 in a
minute of partitions), and each time the cluster answers 503 for a moment.

With pre-vote, the timer running out only sends `kv_pre_vote` for term + 1 to
the other nodes. A node grants it if the asker's log is at least as complete as
its own and it has *not* heard from a leader within the minimum election
timeout (a leader never grants one). Only with a majority of grants does the
node let PySyncObj start the real election; otherwise its term stays put and a
live leader's next heartbeat makes it a follower again. Pre-votes change no
state on the nodes that answer them.

Leader stickiness (Raft thesis §4.2.3) closes the path around pre-vote: a real
`request_vote` for a higher term is ignored, term and all, while the node hears
from a live leader (or is one). A stray or forged vote request would otherwise
move a node to its term, out of reach of the leader's heartbeats. The one
election that must pass while the leader lives is the one the leader asks for
(TimeoutNow, on hand-over): its vote requests carry `HAND_OVER` and may raise
the term by one only. A node whose term got ahead anyway answers the lower-term
leader with `TERM_AHEAD`, and that leader steps down, so that an election
brings the node back (as etcd does with pre-vote on).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

PRE_VOTE = "kv_pre_vote"
PRE_VOTE_REPLY = "kv_pre_vote_reply"
HAND_OVER = "kv_hand_over"  # in a request_vote: sent because the leader handed over
TERM_AHEAD = "kv_term_ahead"  # to a leader whose term is behind the sender's
LEADER_STATE = 2  # PySyncObj's _RAFT_STATE.LEADER


class ElectionView(Protocol):
    """What pre-vote needs to see of, and do to, the Raft node (raft/pysyncobj/node.py)."""

    def raft_term(self) -> int: ...
    def raft_state(self) -> int: ...
    def last_log(self) -> tuple[int, int]: ...  # (index, term)
    def peers(self) -> list[Any]: ...
    def election_due(self, now: float) -> bool: ...
    def postpone_election(self, now: float) -> None: ...
    def forget_leader(self) -> None: ...
    def start_election_now(self) -> None: ...
    def send(self, peer: Any, message: dict[str, Any]) -> None: ...


class PreVote:
    def __init__(self, view: ElectionView, election_timeout_min: float) -> None:
        self._view = view
        self._quiet_period = election_timeout_min
        self._last_leader_contact = float("-inf")
        self._asking_for: int | None = None  # term of the pre-vote round under way
        self._grants = 0
        self._permitted: int | None = None  # term PySyncObj may start an election for
        self._handed_over: int | None = None  # term the leader asked this node to stand for

    def heard_from_leader(self) -> None:
        self._last_leader_contact = time.monotonic()

    def leader_hands_over(self) -> None:
        """The leader asked this node to stand now (Raft's TimeoutNow, when it steps aside):
        no pre-vote round, which the others would refuse while they hear from it."""
        self._permitted, self._asking_for = self._view.raft_term() + 1, None
        self._handed_over = self._permitted

    def mark_vote_request(self, message: dict[str, Any]) -> None:
        """Vote requests of an election the leader asked for say so (see the module doc)."""
        if message.get("term") == self._handed_over:
            message[HAND_OVER] = True

    def ignores_vote_request(self, message: dict[str, Any]) -> bool:
        """Leader stickiness: True for a request_vote that must not even raise the term."""
        term, own = message.get("term"), self._view.raft_term()
        if not isinstance(term, int) or term <= own:
            return False  # PySyncObj refuses these without changing anything
        if message.get(HAND_OVER) is True and term == own + 1:
            return False
        return self._leader_alive()

    def _leader_alive(self) -> bool:
        """This node leads (check-quorum demotes it otherwise), or heard from a leader
        within the minimum election timeout."""
        return (
            self._view.raft_state() == LEADER_STATE
            or time.monotonic() - self._last_leader_contact < self._quiet_period
        )

    def before_tick(self) -> None:
        """Hold PySyncObj's election back until a pre-vote round for it has been won."""
        view, now = self._view, time.monotonic()
        if view.raft_state() == LEADER_STATE or not view.peers() or not view.election_due(now):
            return
        next_term = view.raft_term() + 1
        if self._permitted == next_term:
            return  # won: PySyncObj raises the term and asks for real votes in this tick
        view.postpone_election(now)
        # No word from the leader for an election timeout: it is no longer known, so that
        # clients get "no leader" (503) here instead of waiting on a leader out of reach.
        view.forget_leader()
        self._asking_for, self._grants = next_term, 1  # its own
        index, term = view.last_log()
        request = {
            "type": PRE_VOTE,
            "term": next_term,
            "last_log_index": index,
            "last_log_term": term,
        }
        for peer in view.peers():
            view.send(peer, request)

    def on_request(self, peer: Any, message: dict[str, Any]) -> None:
        view = self._view
        index, term = view.last_log()
        up_to_date = (message["last_log_term"], message["last_log_index"]) >= (term, index)
        granted = message["term"] > view.raft_term() and up_to_date and not self._leader_alive()
        view.send(peer, {"type": PRE_VOTE_REPLY, "term": message["term"], "granted": granted})

    def on_reply(self, message: dict[str, Any]) -> None:
        if not message.get("granted") or message.get("term") != self._asking_for:
            return
        self._grants += 1
        if self._grants > (len(self._view.peers()) + 1) / 2:
            log.info("pre-vote for term %d won; starting the election", self._asking_for)
            self._permitted, self._asking_for = self._asking_for, None
            self._view.start_election_now()
