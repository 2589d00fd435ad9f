"""The seam between kvnode's service layer and what replicates its commands.

Like hashicorp/raft's split between Raft and the FSM: the service
(`kvnode.service`) owns the state machine, which guards itself; a `Consensus` orders
commands, applies each committed one to that state machine on every node, and
answers the proposer with the outcome. `kvnode.raft.consensus.RaftConsensus` is
the real one (PySyncObj); tests use one that applies in-process.

A proposal ends in an outcome, `Unavailable` (certainly not applied: safe to
retry) or `Indeterminate` (may or may not be applied: retry under the same
request id). Nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kvnode.config import NodeConfig
from kvnode.storage.machine import Entry, Restored
from kvnode.storage.outcome import Outcome
from kvnode.storage.timings import Timings


class ProposalError(Exception):
    """Base: the command did not produce a state-machine outcome."""


class Unavailable(ProposalError):
    """Certainly not applied (no leader, no quorum, queue full): safe to retry."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class Indeterminate(ProposalError):
    """The command may or may not have been applied (leader lost, timeout)."""


@dataclass(frozen=True)
class Voter:
    """A voting member as this node sees it."""

    raft_addr: str
    is_self: bool
    # This node hears from it: on the leader, it answered within an election timeout; on
    # a follower, a peer connection is up. Always true of the node itself.
    reachable: bool
    match_index: int | None  # on the leader: the last entry known stored there


class StateMachine(Protocol):
    """What a consensus needs of the state it replicates (hashicorp/raft's FSM): apply a
    batch of committed entries, snapshot to a path, restore from a path. The service owns
    it; it guards itself, so the consensus calls it from its own thread while the service
    reads it from others. `kvnode.storage.machine.StateMachine` is the one kvnode uses."""

    @property
    def last_applied(self) -> int:
        """The index of the last entry applied; entries at or below it are skipped."""

    @property
    def cluster_id(self) -> str:
        """The cluster's name, once its first leader has given it one ("" until then): peers
        that name another are refused."""

    def append(self, entries: Sequence[Entry]) -> list[Outcome | None]:
        """Apply committed entries in order (None for one already applied), unsynced."""

    def sync_later(self) -> Callable[[], None] | None:
        """Make everything applied so far durable: the bookkeeping now; the fsync by the
        function returned, in any thread (None: nothing to sync)."""

    def snapshot(self, path: Path, extra: bytes = b"") -> Path:
        """Write the whole state, with the consensus' own `extra` bytes, to one file."""

    def restore(self, path: Path) -> Restored:
        """Install a verified snapshot if it is newer than what is applied."""


class Consensus(Protocol):
    def propose(self, command: bytes) -> Awaitable[Outcome]:
        """Replicate `command`; awaited, its outcome once this node has applied it."""

    async def read_barrier(self) -> None:
        """Return once this node has applied everything committed before the call."""

    def leader(self) -> str | None:
        """The leader's address, if one is known."""

    def is_leader(self) -> bool: ...

    def leaderless_seconds(self) -> float:
        """How long this node has known no leader; 0 while it knows one."""

    def ready(self) -> bool:
        """A leader is known (with a quorum, on the leader) and all known commits applied."""

    def voters(self) -> list[Voter]:
        """Every voting member, this node included, in address order."""

    def membership_change_pending(self) -> bool:
        """A membership change is in the log and not yet committed."""

    async def change_membership(self, change: str, raft_addr: str) -> None:
        """Add ("add") or remove ("rem") one voter, on the leader; returns once committed.
        Raises `Unavailable` if it was refused, `Indeterminate` if the outcome is unknown."""

    async def hand_over_leadership(self) -> None:
        """On the leader: ask the most caught-up follower to take over now."""

    def status(self) -> dict[str, Any]:
        """Role, term, `leader_raft_addr`, commit and applied index, peers, log sizes: for
        /status (the service adds the leader's URL)."""

    def timings(self) -> dict[str, Timings]:
        """Durations for /metrics by name (the Raft journal's fsync, say); may be empty."""

    def peer_ack_timings(self) -> dict[str, Timings]:
        """On the leader, per follower's Raft address: how long its acknowledgements took."""

    def close(self) -> None:
        """Stop replicating; the state machine is closed by its owner afterwards."""


ConsensusFactory = Callable[[NodeConfig, StateMachine], Consensus]
"""Builds the consensus of one node, which applies committed commands to `machine`."""
