"""A Consensus that applies each proposal at once, in this process: a one-node log with no
network, so the HTTP API can be tested in milliseconds. Faults are switched on by hand."""

from __future__ import annotations

import asyncio
from typing import Any

from kvnode.config import NodeConfig
from kvnode.consensus import Indeterminate, Unavailable, Voter
from kvnode.storage.machine import Entry, StateMachine
from kvnode.storage.outcome import Outcome
from kvnode.storage.timings import Timings

LEADER = "http://127.0.0.1:8001"  # the default config's URL: this node leads


class LocalConsensus:
    def __init__(self, config: NodeConfig, machine: StateMachine) -> None:
        self._machine = machine
        self.refuse: str | None = None  # a reason: every proposal is Unavailable
        self.lose_outcomes = False  # every proposal is Indeterminate (applied or not)
        self.own_address = config.raft_addr
        self.leader_address: str | None = config.raft_addr  # another: this node follows
        self.voter_list = [Voter(config.raft_addr, True, True, None)]
        self.pending = False  # a membership entry is in the log, uncommitted
        self.change_gate: asyncio.Event | None = None  # changes wait for it when set
        self.write_gate: asyncio.Event | None = None  # proposals wait for it when set
        self.held = 0  # proposals waiting for `write_gate` now

    async def propose(self, command: bytes) -> Outcome:
        if self.refuse:
            raise Unavailable(self.refuse, "no leader is known (switched off by the test)")
        if self.write_gate is not None:  # like a write waiting for Raft: the handler suspends
            self.held += 1
            try:
                await self.write_gate.wait()
            finally:
                self.held -= 1
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
        return None if self.refuse else self.leader_address

    def is_leader(self) -> bool:
        return not self.refuse and self.leader_address == self.own_address

    def leaderless_seconds(self) -> float:
        return float("inf") if self.refuse else 0.0

    def ready(self) -> bool:
        return not self.refuse

    def voters(self) -> list[Voter]:
        return sorted(self.voter_list, key=lambda v: v.raft_addr)

    def membership_change_pending(self) -> bool:
        return self.pending

    async def change_membership(self, change: str, raft_addr: str) -> None:
        if self.change_gate is not None:
            await self.change_gate.wait()
        if change == "add":
            self.voter_list.append(Voter(raft_addr, False, False, None))
        else:
            self.voter_list = [v for v in self.voter_list if v.raft_addr != raft_addr]

    async def hand_over_leadership(self) -> None:
        raise Unavailable("denied", "a one-node log in this process has no peers to change")

    def status(self) -> dict[str, Any]:
        applied = self._machine.last_applied
        return {
            "role": "leader" if not self.refuse else "follower",
            "leader_raft_addr": self.leader(),
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
            "leader_changes": 1,
            "tick_stalls": 0,
            "proposals_committed": applied,
            "proposals_failed": 0,
            "proposals_indeterminate": 0,
            "proposals_pending": 0,
        }

    def timings(self) -> dict[str, Timings]:
        return {}

    def peer_ack_timings(self) -> dict[str, Timings]:
        return {}

    def close(self) -> None:
        pass
