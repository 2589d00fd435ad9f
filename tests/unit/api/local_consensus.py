"""A Consensus that applies each proposal at once, in this process: a one-node log with no
network, so the HTTP API can be tested in milliseconds. Faults are switched on by hand."""

from __future__ import annotations

import threading
from typing import Any

from kvnode.config import NodeConfig
from kvnode.consensus import Indeterminate, Unavailable, Voter
from kvnode.storage import Entry, Outcome, StateMachine

LEADER = "127.0.0.1:1"


class LocalConsensus:
    def __init__(self, config: NodeConfig, machine: StateMachine, lock: threading.Lock) -> None:
        self._machine, self._lock = machine, lock
        self.refuse: str | None = None  # a reason: every proposal is Unavailable
        self.lose_outcomes = False  # every proposal is Indeterminate (applied or not)

    async def propose(self, command: bytes) -> Outcome:
        if self.refuse:
            raise Unavailable(self.refuse, "no leader is known (switched off by the test)")
        with self._lock:
            index = self._machine.last_applied + 1
            (outcome,) = self._machine.apply([Entry(index, 1, command)])
        if self.lose_outcomes:
            raise Indeterminate("the outcome was lost (switched off by the test)")
        assert outcome is not None
        return outcome

    async def read_barrier(self) -> None:
        if self.refuse:
            raise Unavailable(self.refuse, "no leader is known (switched off by the test)")

    def leader(self) -> str | None:
        return None if self.refuse else LEADER

    def is_leader(self) -> bool:
        return not self.refuse

    def leaderless_seconds(self) -> float:
        return float("inf") if self.refuse else 0.0

    def ready(self) -> bool:
        return not self.refuse

    def voters(self) -> list[Voter]:
        return [Voter(LEADER, True, True, None)]

    def membership_change_pending(self) -> bool:
        return False

    async def change_membership(self, change: str, raft_addr: str) -> None:
        raise Unavailable("denied", "a one-node log in this process has no peers to change")

    async def hand_over_leadership(self) -> None:
        raise Unavailable("denied", "a one-node log in this process has no peers to change")

    def status(self) -> dict[str, Any]:
        with self._lock:
            applied = self._machine.last_applied
        return {
            "role": "leader" if not self.refuse else "follower",
            "leader": self.leader(),
            "term": 1,
            "commit_index": applied,
            "raft_applied_index": applied,
            "has_quorum": not self.refuse,
            "peers": {},
            "log_entries": applied,
            "journal_bytes": 0,
            "snapshot_bytes": 0,
            "snapshots_written": 0,
            "snapshots_installed": 0,
        }

    def close(self) -> None:
        pass
