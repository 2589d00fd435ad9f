"""The service layer: one node's state machine and its consensus behind the interface the
HTTP API uses.

`KvService` owns the state machine (which guards itself: the consensus applies
committed commands to it from its thread, readers read from the event loop),
decides what a write's outcome means, and runs the TTL sweeper: the leader proposes
`Expire{now}` when a deadline has passed, so expired keys are removed by the
log on every replica, never by a node alone. `Service` is the interface
`kvnode.http.app` depends on; tests serve the API over a `KvService` whose
consensus applies in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, Protocol

from kvnode import commands
from kvnode.access import ROOT, Grant, TokenIndex, is_root
from kvnode.clock import wall_clock_ms
from kvnode.config import NodeConfig
from kvnode.consensus import ConsensusFactory, Indeterminate, Unavailable
from kvnode.contract import CLUSTER_HEADER
from kvnode.service.membership import Membership
from kvnode.storage.fileformat import KIND_SNAPSHOT
from kvnode.storage.image import encode_parts
from kvnode.storage.layout import STATE_MACHINE_DIR, WATCH_DIR, prepare_node_dir
from kvnode.storage.machine import StateMachine
from kvnode.storage.outcome import Outcome, Status
from kvnode.storage.record import KeyRecord, Lease, Token
from kvnode.storage.timings import Timings
from kvnode.watch.history import WatchHistory
from kvnode.watch.hub import WatchHub

log = logging.getLogger(__name__)

EXPIRE_CHECK_SECONDS = 0.5


class Service(Protocol):
    """What the HTTP API needs of a node."""

    config: NodeConfig
    watches: WatchHub
    membership: Membership

    def write(self, command: bytes) -> Awaitable[Outcome]: ...
    async def read_barrier(self) -> None: ...
    def get(self, key: str) -> tuple[KeyRecord | None, int]: ...
    def scan(
        self, prefix: str, limit: int, start_after: str = "", end: str = ""
    ) -> tuple[list[tuple[str, KeyRecord]], int]: ...
    def count(self, prefix: str, end: str = "") -> tuple[int, int]: ...
    def lease(self, lease_id: int) -> tuple[Lease | None, list[str], int]: ...
    def leases(self) -> tuple[list[tuple[int, Lease]], int]: ...
    async def backup(self) -> tuple[bytes, int]: ...
    def leader(self) -> str | None: ...
    @property
    def cluster_id(self) -> str: ...
    def node_headers(self) -> dict[str, str]: ...
    def node_header_lines(self) -> str: ...
    def leaderless_seconds(self) -> float: ...
    def status(self, *, with_digest: bool = False) -> dict[str, Any]: ...
    def timings(self) -> dict[str, Timings]: ...
    def grant_for(self, secret: str) -> Grant | None: ...
    def tokens(self) -> Mapping[str, Token]: ...
    def peer_ack_timings(self) -> dict[str, Timings]: ...
    def ready(self) -> bool: ...
    def refuse_over_quota(self, request_id: str) -> None: ...


class QuotaExceeded(Exception):
    """The store is at its space quota: a write that adds data is refused unapplied."""


def new_cluster_id() -> str:
    """16 hex digits, like etcd's cluster ID: random, so two clusters never share one."""
    return secrets.token_hex(8)


class KvService:
    def __init__(self, config: NodeConfig, consensus: ConsensusFactory) -> None:
        self.config = config
        data_dir = Path(config.data_dir)
        prepare_node_dir(data_dir)
        self.history = WatchHistory(
            config.watch_history,
            config.watch_history_bytes,
            data_dir / WATCH_DIR,
            durable=config.durable,
        )
        self.history.load()  # before the state machine replays its log after them
        self.machine = StateMachine(
            data_dir / STATE_MACHINE_DIR,
            fsync=config.durable,
            checkpoint_entries=config.checkpoint_entries,
            checkpoint_seconds=config.checkpoint_seconds,
            repair=config.repair,
            changes=self.history,
            background_checkpoints=config.fork_snapshots,
        )
        # A watcher may hold as many undelivered changes as the history holds.
        self.watches = WatchHub(self.history, max_pending=config.watch_history)
        self._token_index = TokenIndex()
        self._node_headers_of: tuple[str | None, str] | None = None  # (leader, cluster id)
        self._node_headers_made: tuple[dict[str, str], str] = ({}, "")
        self.consensus = consensus(config, self.machine)
        self.membership = Membership(
            config,
            self.consensus,
            self.write,
            directory=lambda: self.machine.members,
            member=self.machine.member,
            applied_index=lambda: self.machine.last_applied,
        )

    def write(self, command: bytes) -> Awaitable[Outcome]:
        """Awaited by the caller: the consensus' own awaitable, without a coroutine of
        this layer's on the way of every write."""
        return self.consensus.propose(command)

    async def read_barrier(self) -> None:
        await self.consensus.read_barrier()

    def get(self, key: str) -> tuple[KeyRecord | None, int]:
        """The live record of `key` (or None) and the store revision it was read at."""
        return self.machine.read(key, wall_clock_ms())

    def scan(
        self, prefix: str, limit: int, start_after: str = "", end: str = ""
    ) -> tuple[list[tuple[str, KeyRecord]], int]:
        """Up to `limit` live keys under `prefix` after `start_after` and before `end`, in
        key order, and the store revision they were read at."""
        return self.machine.scan(prefix, wall_clock_ms(), start_after, limit, end)

    def count(self, prefix: str, end: str = "") -> tuple[int, int]:
        """How many live keys are under `prefix` and before `end`, and the revision."""
        return self.machine.count(prefix, end)

    def lease(self, lease_id: int) -> tuple[Lease | None, list[str], int]:
        """A lease (None if there is none), its keys, and the store revision read at."""
        return self.machine.lease(lease_id)

    def leases(self) -> tuple[list[tuple[int, Lease]], int]:
        return self.machine.leases()

    async def backup(self) -> tuple[bytes, int]:
        """A verified snapshot file of the whole state (and its store revision), for
        `GET /snapshot`.
        Only the capture stops applies (it copies references); the encoding, the
        expensive part, runs in a thread while writes go on."""
        image, count = self.machine.capture()
        data, _crc = await asyncio.to_thread(encode_parts, KIND_SNAPSHOT, image, count)
        return data, image.revision

    def refuse_over_quota(self, request_id: str) -> None:
        """Before a write that adds data: 507 once the store holds `quota_bytes` (like etcd's
        NOSPACE alarm), so reads, deletes and compaction go on and the space can be
        freed. The retry of a write already applied passes: it adds nothing, and its
        first answer must not be turned into a refusal."""
        quota = self.config.quota_bytes
        if self.machine.data_bytes < quota:
            return
        if request_id and self.machine.knows_request(request_id):
            return
        raise QuotaExceeded(
            f"the store holds {self.machine.data_bytes} bytes, at or past quota_bytes"
            f" ({quota}); delete keys to make room"
        )

    def leader(self) -> str | None:
        """The leader's HTTP URL (None while no leader, or its URL, is known)."""
        return self.membership.leader_url()

    def leaderless_seconds(self) -> float:
        return self.consensus.leaderless_seconds()

    def status(self, *, with_digest: bool = False) -> dict[str, Any]:
        """The consensus' view and the state machine's. The digest is O(keys) and stalls
        applies on a large store, so callers that poll often leave it out."""
        machine = self.machine.stats(with_digest=with_digest)
        raft = self.consensus.status()
        return {
            "node_id": self.config.node_id,
            "cluster_id": self.machine.cluster_id or None,
            "pid": os.getpid(),  # lets tools outside kvnode signal the node they see here
            "raft_addr": self.config.raft_addr,
            "http_url": self.config.client_url,
            **raft,
            "leader": self.membership.url_of(raft["leader_raft_addr"]),
            "applied_index": machine.last_applied,
            "revision": machine.revision,
            "wal_bytes": machine.wal_bytes,
            "checkpoint_bytes": machine.checkpoint_bytes,
            "keys": machine.keys,
            "leases": machine.leases,
            "watchers": self.watches.watchers,
            "watch_events": self.watches.events_sent,
            "store_bytes": self.machine.data_bytes,
            "quota_bytes": self.config.quota_bytes,
            "digest": machine.digest,
        }

    def timings(self) -> dict[str, Timings]:
        """Durations for /metrics: applying a batch, the WAL's and the journal's fsync."""
        return {
            "apply": self.machine.apply_timings,
            "wal_fsync": self.machine.wal_fsync_timings,
            "checkpoint": self.machine.checkpoint_timings,
            **self.consensus.timings(),
        }

    def peer_ack_timings(self) -> dict[str, Timings]:
        return self.consensus.peer_ack_timings()

    def grant_for(self, secret: str) -> Grant | None:
        """What a bearer token may do: the root token (`auth_token`) everything, a created
        token its role; None for an unknown one."""
        if is_root(secret, self.config.auth_token):
            return ROOT
        return self._token_index.grant(self.machine.tokens, secret)

    def tokens(self) -> Mapping[str, Token]:
        return self.machine.tokens

    @property
    def cluster_id(self) -> str:
        return self.machine.cluster_id

    def node_headers(self) -> dict[str, str]:
        """The headers of every reply: who answers, who leads, and in which cluster."""
        return dict(self._node_headers()[0])

    def node_header_lines(self) -> str:
        """`node_headers` as header lines, for a reply written as bytes (kvnode.http.lean)."""
        return self._node_headers()[1]

    def _node_headers(self) -> tuple[dict[str, str], str]:
        """Made again only when the leader or the cluster id changed: asked on every reply."""
        now = (self.leader(), self.machine.cluster_id)
        if now != self._node_headers_of:
            leader, cluster_id = now
            headers = {"X-KV-Node": self.config.node_id, "X-KV-Leader": leader or ""}
            if cluster_id:
                headers[CLUSTER_HEADER] = cluster_id
            lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            self._node_headers_of, self._node_headers_made = now, (headers, lines)
        return self._node_headers_made

    def ready(self) -> bool:
        """Able to serve: a leader is known, with its URL (and, on the leader, a majority is
        reachable), and everything committed that this node knows of is applied."""
        return self.consensus.ready() and self.leader() is not None

    async def expire_keys_forever(self) -> None:
        """On the leader: propose Expire{now} whenever a key's or a lease's deadline has
        passed. A new leader first renews every lease (LeaseRenewAll, like etcd's lessor
        promotion): keepalives that failed during the election must not cost a lease."""
        renewed_in_term: int | None = None
        while True:
            await asyncio.sleep(EXPIRE_CHECK_SECONDS)
            if not self.consensus.is_leader():
                continue
            term = self.consensus.status()["term"]
            with contextlib.suppress(Unavailable, Indeterminate):
                if renewed_in_term != term:
                    await self.write(
                        commands.lease_renew_all(
                            round(self.config.election_timeout_max * 1000),
                            issued_at_ms=wall_clock_ms(),
                        )
                    )
                    renewed_in_term = term
                if not self.machine.cluster_id:  # a new cluster: its first leader names it
                    await self.write(commands.cluster_init(new_cluster_id(), issued_at_ms=0))
                deadline = self.machine.next_deadline()
                now = wall_clock_ms()
                if deadline is not None and deadline <= now:
                    await self.write(commands.expire(now))

    def close(self) -> None:
        """Stop the consensus (its thread and sockets), then sync and close the state machine.

        No final checkpoint: the WAL left behind (bounded by the checkpoint policy)
        is replayed at the next start, after the watch history's segments are
        loaded, so a watcher can resume on this node after a restart.
        """
        self.consensus.close()
        self.machine.close(checkpoint=False)


__all__ = ["KeyRecord", "KvService", "Outcome", "QuotaExceeded", "Service", "Status"]
