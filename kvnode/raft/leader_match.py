"""The leader's own copy counts towards a commit only once it is on disk.

PySyncObj's leader counts itself in every commit majority as soon as it has
appended an entry. kvnode's journal is synced in the background
(journal_sync.py), so that count would be a promise the disk has not kept yet.
Rather than change PySyncObj's commit rule, the leader shows it each follower's
matchIndex capped at the leader's own synced index: in a cluster of two or more
voters every majority includes a follower, so no entry commits before the
leader's copy is durable, and none later than needed: the cap is lifted as the
syncs complete. The followers' reported indexes are kept here, per term (a new
leadership starts from nothing, as PySyncObj's does).

A lone voter has no follower to cap; it syncs before it applies (node.py).
"""

from __future__ import annotations

from typing import Any


class LeaderMatch:
    """Tick thread only."""

    def __init__(self) -> None:
        self._term = -1
        self._reported: dict[Any, int] = {}

    def reported(self, node: Any) -> int:
        """The highest index `node` acknowledged in this leadership (0: none known)."""
        return self._reported.get(node, 0)

    def after_reply(self, node: Any, match_index: dict[Any, int], term: int, synced: int) -> None:
        """PySyncObj has just recorded a success reply in `match_index`: keep what the
        follower reported, and show PySyncObj no more than the leader has synced."""
        self._start_term(term)
        reported = max(self._reported.get(node, 0), match_index.get(node, 0))
        self._reported[node] = reported
        match_index[node] = min(reported, synced)

    def after_sync(self, match_index: dict[Any, int], term: int, synced: int) -> None:
        """The leader's synced index moved: lift the caps up to it."""
        self._start_term(term)
        for node, reported in self._reported.items():
            if node in match_index:
                match_index[node] = min(reported, synced)

    def forget(self, node: Any) -> None:
        self._reported.pop(node, None)

    def forget_all(self) -> None:
        """The voters changed: PySyncObj starts an added node from 0, and so must this."""
        self._reported.clear()

    def _start_term(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._reported.clear()


def answers_another_term(reply: dict[str, Any], term: int) -> bool:
    """Whether a follower's reply (`next_node_idx`) was sent in a term other than the
    leader's current one. Raft drops such a reply (§5.1); PySyncObj's leader would count
    it: a success reply from an earlier leadership of the same node, held in the
    follower's outbox behind a slow fsync or still in flight, would vouch for entries
    the follower may since have replaced with another leader's, and the leader could
    commit an entry that only it holds. Followers stamp the term (transport.py); a
    reply without one (a kvnode too old to stamp it) is taken as before."""
    stamped = reply.get("term")
    return isinstance(stamped, int) and stamped != term
