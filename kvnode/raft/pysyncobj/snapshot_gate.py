"""A follower refuses a snapshot older than what it has already committed.

PySyncObj installs whatever snapshot a leader streams: it replaces the dump
file, clears the journal down to the snapshot's last entry and winds the
commit index back ("raftCommitIndex exceeds journal end ... clamping"). When
the leader's view of this follower is stale (its nextIndex fell below its own
log start, for example after a partition healed and replies crossed), the
follower so throws away committed entries it had acknowledged: for a while a
committed entry has one copy fewer than the majority that made it committed.

Raft's rule (thesis §5.4.1, InstallSnapshot step 6) is to keep the log when it
already covers the snapshot. The gate reads the snapshot's index from its first
chunk (kvnode's image header) and, when it is below the follower's commit
index, drops the whole transmission and tells the leader where this follower
really is (commit index + 1), so replication carries on from there.
"""

from __future__ import annotations

from typing import Any

from kvnode.storage.fileformat import KIND_SNAPSHOT
from kvnode.storage.image import peek_index


class SnapshotGate:
    def __init__(self) -> None:
        self._dropping = False

    def screen(self, chunk: Any, commit_index: int) -> tuple[bool, int | None]:
        """For one received snapshot chunk `(data, is_first, is_last)`: whether to drop it,
        and the index of a snapshot refused with this chunk (its first)."""
        if not isinstance(chunk, tuple) or len(chunk) != 3:
            return False, None
        data, is_first, is_last = chunk
        refused = None
        if is_first:
            index = peek_index(bytes(data), KIND_SNAPSHOT)
            self._dropping = index is not None and index < commit_index
            refused = index if self._dropping else None
        drop = self._dropping
        if is_last:
            self._dropping = False
        return drop, refused
