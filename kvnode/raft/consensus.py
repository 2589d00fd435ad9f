"""RaftConsensus: the `Consensus` of a real node, PySyncObj underneath (see raft/node.py)."""

from __future__ import annotations

import threading
from typing import Any

from kvnode.config import NodeConfig
from kvnode.consensus import StateMachine
from kvnode.raft.node import RaftNode
from kvnode.raft.proposer import Proposer, ReadBarrier
from kvnode.storage import Outcome


class RaftConsensus:
    def __init__(self, config: NodeConfig, machine: StateMachine, lock: threading.Lock) -> None:
        self.node = RaftNode(config, machine, lock)
        self._proposer = Proposer(self.node, config.request_timeout)
        self._barrier = ReadBarrier(self._proposer)

    async def propose(self, command: bytes) -> Outcome:
        return await self._proposer.propose(command)

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

    def members(self) -> list[str]:
        return self.node.members()

    def status(self) -> dict[str, Any]:
        return self.node.status()

    def close(self) -> None:
        self.node.destroy_synchronous()
