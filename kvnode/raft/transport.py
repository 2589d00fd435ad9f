"""The peer transport: a persistence barrier on sends, a fix to the leader's nextIndex, and
no peer port for a lone node without a secret.

Every Raft message PySyncObj sends goes through `send`. Before any message
other than the leader's own append-entries leaves, the journal is synced:
that is Raft's "persist before you reply" (a follower's acknowledgement, a
vote) in one place, and all entries appended since the previous message share
one fsync. The leader's append-entries go out *before* its own fsync, so its
disk write overlaps the network round trip and the followers' fsyncs (Raft
allows this); the leader syncs at the end of the same tick (RaftNode), before
the next tick can count its own copy towards a commit majority.

PySyncObj's leader sets a follower's nextIndex to whatever a success reply
says, even when it has already sent further (pipelining): an older reply moves
nextIndex *back*, the same entries go out again, and the follower, which
truncates everything after prevLogIdx whenever it has more, cuts and re-appends
entries it had acknowledged (the "truncating already-applied log entries"
CRITICAL log). For that moment a committed entry may have one copy fewer than
its majority. A success reply can only ever move nextIndex forward, so that is
what `_onMessageReceived` enforces; failure replies (reset) still move it back.
"""

from __future__ import annotations

from typing import Any

from pysyncobj.transport import TCPTransport

from kvnode.raft.journal import DurableJournal

# Messages that acknowledge nothing this node stored: the leader's replication
# (followers do not count it as durable anywhere) and command forwarding.
UNSYNCED_MESSAGES = frozenset({"append_entries", "apply_command", "apply_command_response"})


class SyncedTransport(TCPTransport):
    journal: DurableJournal  # set by `bind_journal` before PySyncObj creates the transport

    @classmethod
    def bind_journal(cls, journal: DurableJournal) -> type[SyncedTransport]:
        """A subclass bound to one node's journal (PySyncObj instantiates the class itself)."""
        return type("BoundSyncedTransport", (cls,), {"journal": journal})

    def _createServer(self) -> None:
        """A lone node without a cluster secret has no one to listen to: it opens no peer
        port at all, so nothing can reach its unauthenticated message decoding."""
        config = self._syncObj.kv_config
        if config.single_node and not config.cluster_secret:
            self._ready = True  # nothing to bind; PySyncObj waits for this flag
            return
        super()._createServer()

    def send(self, node: Any, message: Any) -> bool:
        if message.get("type") not in UNSYNCED_MESSAGES:
            self.journal.sync_if_dirty()
        return super().send(node, message)

    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if not (
            isinstance(message, dict)
            and message.get("type") == "next_node_idx"
            and message.get("success")
            and not message.get("reset")
        ):
            super()._onMessageReceived(node, message)
            return
        next_index = self._syncObj._SyncObj__raftNextIndex
        sent_up_to = next_index.get(node)
        super()._onMessageReceived(node, message)
        if sent_up_to is not None and next_index.get(node, sent_up_to) < sent_up_to:
            next_index[node] = sent_up_to
