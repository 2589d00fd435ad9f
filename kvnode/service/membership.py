"""Cluster membership: who votes, where each member's HTTP API is, and the rules for changing
either without losing the cluster.

Two things make up a member. Who votes is Raft's configuration: PySyncObj's
single-server membership entries, in effect on each node as soon as they are
in its log (`Consensus.change_membership`). Where a member's HTTP API is, and
its name, is the *member directory*, replicated state like a key
(`MemberPublish`): each node publishes its own entry once it is a voter, as
etcd members publish their client URLs, and an addition records the new
member's entry before it can start. The directory is what turns the leader's
Raft address into the URL in `X-KV-Leader`.

Changes are made on the leader, one at a time, and only when they keep a
quorum (etcd's strict reconfiguration check): after the change, a majority of
the new set of voters must be reachable from the leader, counting a member
being added as unreachable. A leader asked to remove itself hands leadership
to the most caught-up follower first and sends the caller there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kvnode import commands
from kvnode.clock import wall_clock_ms
from kvnode.config import NodeConfig
from kvnode.consensus import Consensus, Indeterminate, Unavailable, Voter
from kvnode.storage.outcome import Outcome
from kvnode.storage.record import Member

log = logging.getLogger(__name__)

PUBLISH_CHECK_SECONDS = 1.0  # once published; until then every PUBLISH_RETRY_SECONDS
PUBLISH_RETRY_SECONDS = 0.1
HANDOVER_POLL_SECONDS = 0.05
HANDOVER_TRIES = 3  # election timeouts a leader waits for another member to take over


class MembershipRefused(Exception):
    """A change that is not made: `code` and `message` for the caller (HTTP 409 or 404)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class NotLeader(Exception):
    """Membership changes are made by the leader; `leader_url` is where to ask (or None)."""

    def __init__(self, leader: str | None, leader_url: str | None) -> None:
        super().__init__(f"the leader is {leader_url or leader or 'not known'}")
        self.leader, self.leader_url = leader, leader_url


def quorum(voters: int) -> int:
    return voters // 2 + 1


def addition_refusal(voters: list[Voter]) -> str | None:
    """Why adding one (not yet reachable) voter would leave the cluster unable to commit.
    A lone member may add a second: there is no other way to grow (etcd allows it too),
    and the cluster waits for the new member to start."""
    reachable = sum(v.reachable for v in voters)
    after = len(voters) + 1
    if reachable >= quorum(after) or len(voters) == 1:
        return None
    return (
        f"with a new member the cluster has {after} voters and needs {quorum(after)} of them to"
        f" commit anything, but only {reachable} of the current {len(voters)} are reachable"
        " and the new one has not started yet; bring the missing members back first"
    )


def removal_refusal(voters: list[Voter], raft_addr: str) -> str | None:
    """Why removing `raft_addr` would leave the remaining voters without a quorum."""
    rest = [v for v in voters if v.raft_addr != raft_addr]
    if not rest:
        return "this is the cluster's last member"
    reachable = sum(v.reachable for v in rest)
    if reachable >= quorum(len(rest)):
        return None
    return (
        f"the {len(rest)} remaining voters need {quorum(len(rest))} reachable to commit"
        f" anything, but only {reachable} are; bring the missing members back first"
    )


class Membership:
    def __init__(
        self,
        config: NodeConfig,
        consensus: Consensus,
        write: Callable[[bytes], Awaitable[Outcome]],
        directory: Callable[[], dict[str, Member]],
        member: Callable[[str], Member | None],
        applied_index: Callable[[], int],
    ) -> None:
        self._config = config
        self._consensus = consensus
        self._write = write
        self._directory = directory  # a copy of the whole directory, for listings
        self._member = member  # one entry: on every reply's X-KV-Leader
        self._applied_index = applied_index
        self._changing = asyncio.Lock()

    # -- reading ------------------------------------------------------------------------

    def url_of(self, raft_addr: str | None) -> str | None:
        """The HTTP URL of the member at `raft_addr`, once it is in the directory."""
        if raft_addr is None:
            return None
        if raft_addr == self._config.raft_addr:
            return self._config.client_url
        member = self._member(raft_addr)
        return member.http_url if member is not None and member.http_url else None

    def leader_url(self) -> str | None:
        return self.url_of(self._consensus.leader())

    def members(self) -> list[dict[str, Any]]:
        """`GET /cluster/members`: every voter as this node sees it."""
        directory = self._directory()  # a copy already
        leader = self._consensus.leader()
        listed = []
        for voter in self._consensus.voters():
            entry = directory.get(voter.raft_addr)
            if voter.is_self:
                entry = Member(self._config.node_id, self._config.client_url)
            applied = self._applied_index() if voter.is_self else voter.match_index
            listed.append(
                {
                    "id": entry.node_id if entry is not None and entry.node_id else voter.raft_addr,
                    "raft_addr": voter.raft_addr,
                    "http_url": entry.http_url if entry is not None and entry.http_url else None,
                    "is_leader": voter.raft_addr == leader,
                    "reachable": voter.reachable,
                    "applied_index": applied,
                }
            )
        return listed

    def _find(self, member: str) -> dict[str, Any]:
        for listed in self.members():
            if member in (listed["id"], listed["raft_addr"]):
                return listed
        raise MembershipRefused(
            404, "member_not_found", f"no voting member has the id or raft_addr {member!r}"
        )

    # -- changing -------------------------------------------------------------------------

    async def add(self, raft_addr: str, http_url: str, node_id: str) -> dict[str, Any]:
        """Make `raft_addr` a voter (it starts with `--join` or `initial_state = "existing"`
        and catches up from the leader). Returns the new member as listed."""
        for listed in self.members():
            clash = [
                name
                for name, mine, theirs in (
                    ("raft_addr", raft_addr, listed["raft_addr"]),
                    ("http_url", http_url, listed["http_url"]),
                    ("id", node_id, listed["id"]),
                )
                if mine and mine == theirs
            ]
            if clash:
                raise MembershipRefused(
                    409,
                    "member_exists",
                    f"member {listed['id']} already has this {' and '.join(clash)}",
                    member=listed,
                    members=self.members(),
                )
        async with self._one_change():
            refusal = addition_refusal(self._consensus.voters())
            if refusal:
                raise MembershipRefused(409, "would_lose_quorum", refusal)
            if self._config.single_node and not self._config.cluster_secret:
                raise MembershipRefused(
                    409,
                    "no_peer_port",
                    "this node was started alone without a cluster_secret, so it opened no"
                    " Raft port; restart it with a cluster_secret to grow the cluster",
                )
            await self._write(
                commands.member_publish(raft_addr, node_id, http_url, issued_at_ms=wall_clock_ms())
            )
            try:
                await self._consensus.change_membership("add", raft_addr)
            except Unavailable:
                with contextlib.suppress(Unavailable, Indeterminate):
                    await self._write(
                        commands.member_forget(raft_addr, issued_at_ms=wall_clock_ms())
                    )
                raise
            log.info("added member %s (%s, %s)", node_id or "?", raft_addr, http_url)
            return self._find(raft_addr)

    async def remove(self, member: str) -> dict[str, Any]:
        """Stop `member` (an id or raft_addr) from voting; returns it as it was listed."""
        removed = self._find(member)
        async with self._one_change():
            refusal = removal_refusal(self._consensus.voters(), removed["raft_addr"])
            if refusal:
                raise MembershipRefused(409, "would_lose_quorum", refusal)
            if removed["raft_addr"] == self._config.raft_addr:
                await self._hand_over()
            await self._consensus.change_membership("rem", removed["raft_addr"])
            with contextlib.suppress(Unavailable, Indeterminate):
                await self._write(
                    commands.member_forget(removed["raft_addr"], issued_at_ms=wall_clock_ms())
                )
            log.info("removed member %s (%s)", removed["id"], removed["raft_addr"])
            return removed

    @contextlib.asynccontextmanager
    async def _one_change(self) -> Any:
        if not self._consensus.is_leader():
            raise NotLeader(self._consensus.leader(), self.leader_url())
        if self._changing.locked() or self._consensus.membership_change_pending():
            raise MembershipRefused(
                409,
                "membership_change_in_progress",
                "another membership change is not committed yet; retry when it is",
            )
        async with self._changing:
            yield

    async def _hand_over(self) -> None:
        """The leader cannot remove itself: another member takes over, and the caller is
        sent there (`NotLeader`). A follower must hold the whole log to take over, which
        under writes may take a few tries."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDOVER_TRIES * self._config.election_timeout_max
        while loop.time() < deadline:
            try:
                await self._consensus.hand_over_leadership()
            except Unavailable:  # no follower holds the whole log yet
                await asyncio.sleep(HANDOVER_POLL_SECONDS)
                continue
            settled = loop.time() + self._config.election_timeout_max
            while loop.time() < settled:
                leader = self._consensus.leader()
                if leader is not None and leader != self._config.raft_addr:
                    raise NotLeader(leader, self.url_of(leader))
                await asyncio.sleep(HANDOVER_POLL_SECONDS)
        raise MembershipRefused(
            409,
            "leader_transfer_failed",
            "this node leads and no other member took over in time; retry",
        )

    # -- the directory entry of this node ------------------------------------------------

    async def publish_forever(self) -> None:
        """Keep this node's directory entry (its id and URL) current, once it votes."""
        own = Member(self._config.node_id, self._config.client_url)
        address = self._config.raft_addr
        while True:
            current = self._member(address) == own
            await asyncio.sleep(PUBLISH_CHECK_SECONDS if current else PUBLISH_RETRY_SECONDS)
            if current or self._consensus.leader() is None:
                continue
            with contextlib.suppress(Unavailable, Indeterminate):
                await self._write(
                    commands.member_publish(
                        address, own.node_id, own.http_url, issued_at_ms=wall_clock_ms()
                    )
                )
                log.info("published this member's URL %s", own.http_url)
