"""Replica: one node's state machine, Raft node and proposer behind one small interface.

This is what the HTTP layer talks to: `write` a command, `read_barrier` before
a linearizable read, `get`/`scan` the local state, `status`. It also runs the
TTL sweeper: the leader proposes `Expire{now}` when a deadline has passed, so
expired keys are removed by the log on every replica, never by a node alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from pathlib import Path
from typing import Any

from kvnode import commands
from kvnode.clock import wall_clock_ms
from kvnode.config import NodeConfig
from kvnode.raft.errors import Indeterminate, Unavailable
from kvnode.raft.node import RaftNode
from kvnode.raft.proposer import Proposer, ReadBarrier
from kvnode.storage import KeyRecord, Outcome, StateMachine
from kvnode.storage.errors import StorageFailure
from kvnode.storage.layout import STATE_MACHINE_DIR, WRITE_PROBE, check_node_dir

log = logging.getLogger(__name__)

EXPIRE_CHECK_SECONDS = 0.5
WRITE_PROBE_BYTES = 1024 * 1024  # room for at least a few journal entries and a meta file


def probe_writable(data_dir: Path) -> None:
    """Refuse to start on a directory that cannot take a write (a full or read-only disk):
    the node would otherwise join, fall behind and stop at its first journal append."""
    probe = data_dir / WRITE_PROBE
    try:
        with open(probe, "wb") as handle:
            handle.write(bytes(WRITE_PROBE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise StorageFailure(data_dir, f"cannot write to the data directory: {exc}") from None
    finally:
        probe.unlink(missing_ok=True)


class Replica:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        data_dir = Path(config.data_dir)
        check_node_dir(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        probe_writable(data_dir)
        self.machine = StateMachine(
            data_dir / STATE_MACHINE_DIR,
            fsync=config.durable,
            checkpoint_entries=config.checkpoint_entries,
            checkpoint_seconds=config.checkpoint_seconds,
            repair=config.repair,
        )
        self.node = RaftNode(config, self.machine)
        self.proposer = Proposer(self.node, config.request_timeout)
        self.barrier = ReadBarrier(self.proposer)

    async def write(self, command: bytes) -> Outcome:
        return await self.proposer.propose(command)

    async def read_barrier(self) -> None:
        await self.barrier.wait()

    def get(self, key: str) -> KeyRecord | None:
        with self.node.machine_lock:
            return self.machine.get(key, wall_clock_ms())

    def scan(self, prefix: str, limit: int, start_after: str = "") -> list[tuple[str, KeyRecord]]:
        """Up to `limit` live keys under `prefix` after `start_after`, in key order."""
        with self.node.machine_lock:
            return list(
                itertools.islice(self.machine.scan(prefix, wall_clock_ms(), start_after), limit)
            )

    def leader(self) -> str | None:
        return self.node.leader_address()

    def status(self, *, with_digest: bool = True) -> dict[str, Any]:
        return {
            "node_id": self.config.node_id,
            "pid": os.getpid(),  # lets tools outside kvnode signal the node they see here
            "raft_addr": self.config.raft_addr,
            **self.node.status(with_digest=with_digest),
        }

    def ready(self) -> bool:
        """Able to serve: a leader is known (and, on the leader, a majority is reachable), and
        everything committed that this node knows of is applied."""
        status = self.node.getStatus()
        if status["leader"] is None or status["last_applied"] < status["commit_idx"]:
            return False
        return not self.node.is_leader() or bool(status["has_quorum"])

    async def expire_keys_forever(self) -> None:
        """On the leader: propose Expire{now} whenever some key's deadline has passed."""
        while True:
            await asyncio.sleep(EXPIRE_CHECK_SECONDS)
            deadline = self.machine.next_deadline()
            now = wall_clock_ms()
            if deadline is None or deadline > now or not self.node.is_leader():
                continue
            with contextlib.suppress(Unavailable, Indeterminate):
                await self.write(commands.expire(now))

    def close(self) -> None:
        """Stop Raft (its thread and sockets), then checkpoint and close the state machine."""
        self.node.destroy_synchronous()
        with self.node.machine_lock:
            self.machine.close()
