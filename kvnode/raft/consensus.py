"""RaftConsensus: the `Consensus` of a real node, PySyncObj underneath (raft/pysyncobj/node.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from kvnode.config import NodeConfig
from kvnode.consensus import StateMachine, Unavailable, Voter
from kvnode.raft.batcher import WriteBatcher
from kvnode.raft.proposer import Proposer, ReadBarrier
from kvnode.raft.pysyncobj.adapter import node_address
from kvnode.raft.pysyncobj.node import RaftNode
from kvnode.storage.outcome import Outcome
from kvnode.storage.timings import Timings

HAND_OVER_RETRY_SECONDS = 0.01
"""How soon a denied hand-over is asked again: about one append round trip."""


class RaftConsensus:
    def __init__(self, config: NodeConfig, machine: StateMachine) -> None:
        self.node = RaftNode(config, machine)
        self._proposer = Proposer(self.node, config.request_timeout)
        self._batcher = WriteBatcher(self._proposer.propose_then, config.max_value_bytes)
        self._barrier = ReadBarrier(self.node, config.request_timeout)
        self._heard_within = config.election_timeout_max

    def propose(self, command: bytes) -> Awaitable[Outcome]:
        return self._batcher.propose(command)

    async def read_barrier(self) -> None:
        await self._barrier.wait()

    def leader(self) -> str | None:
        return self.node.leader_address()

    def is_leader(self) -> bool:
        return self.node.is_leader()

    def leaderless_seconds(self) -> float:
        return self.node.leaderless_seconds()

    def ready(self) -> bool:
        status = self.node.getStatus()
        if status["leader"] is None or status["last_applied"] < status["commit_idx"]:
            return False
        if self.node.catch_up.active:
            return False
        return not self.node.is_leader() or bool(status["has_quorum"])

    def voters(self) -> list[Voter]:
        node = self.node
        leading = node.is_leader()
        heard = node.responded_within(self._heard_within) if leading else node.connected_addresses()
        matched = node.match_indexes() if leading else {}
        own = node.kv_config.raft_addr
        return [
            Voter(address, address == own, address == own or address in heard, matched.get(address))
            for address in node.members()
        ]

    def membership_change_pending(self) -> bool:
        return self.node.membership_change_pending()

    async def change_membership(self, change: str, raft_addr: str) -> None:
        await self._proposer.submit(
            lambda callback: self.node.change_membership(change, raft_addr, callback)
        )

    async def hand_over_leadership(self) -> None:
        """PySyncObj denies a hand-over while no connected follower holds every entry, and a
        busy leader is often an entry or two ahead. Ask again until one catches up; the
        caller bounds the whole wait."""
        while True:
            try:
                await self._proposer.submit(self.node.hand_over_leadership)
                return
            except Unavailable as exc:
                if exc.reason != "denied" or not self.node.is_leader():
                    raise
            await asyncio.sleep(HAND_OVER_RETRY_SECONDS)

    def status(self) -> dict[str, Any]:
        proposals = {f"proposals_{k}": v for k, v in self._proposer.counts.items()}
        return {**self.node.status(), **proposals}

    def timings(self) -> dict[str, Timings]:
        return {"journal_fsync": self.node.journal.fsync_timings}

    def peer_ack_timings(self) -> dict[str, Timings]:
        acks = self.node.transport().ack_timings
        return {node_address(node): timings for node, timings in list(acks.items())}

    def close(self) -> None:
        self.node.destroy_synchronous()
