"""The peer transport with a persistence barrier: nothing leaves the node unsynced.

Every Raft message PySyncObj sends (append entries, their acknowledgements,
vote replies, forwarded commands) goes through `send`. Syncing the journal
there implements "persist before you reply" in one place, and all entries
appended since the previous message share a single fsync.
"""

from __future__ import annotations

from typing import Any

from pysyncobj.transport import TCPTransport

from kvnode.raft.journal import DurableJournal


class SyncedTransport(TCPTransport):
    journal: DurableJournal  # set by `bind_journal` before PySyncObj creates the transport

    @classmethod
    def bind_journal(cls, journal: DurableJournal) -> type[SyncedTransport]:
        """A subclass bound to one node's journal (PySyncObj instantiates the class itself)."""
        return type("BoundSyncedTransport", (cls,), {"journal": journal})

    def send(self, node: Any, message: Any) -> bool:
        self.journal.sync_if_dirty()
        return super().send(node, message)
