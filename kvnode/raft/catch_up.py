"""The vote guard of a replacement node: no vote, no candidacy, until it holds the log.

Raft's safety rests on every node remembering its vote for a term. A node
whose disk was lost and that rejoins with an empty data directory has
forgotten it, and could vote twice in one term: two leaders, and lost writes.
So a node started empty with `initial_state = "existing"` (it replaces a
member of a running cluster) marks its data directory `raft.catching-up`
(durably, before it talks to anyone) and, while the mark is there, ignores
vote and pre-vote requests and never starts an election. It clears the mark
once it has a leader and its log reaches an entry of the leader's current
term (from a snapshot or from the log): from then on, its term and log are
as good as any member's. A crash during catch-up keeps the mark.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kvnode.storage.fileformat import fsync_dir
from kvnode.storage.layout import CATCHING_UP, RAFT_JOURNAL, RAFT_META

log = logging.getLogger(__name__)


class CatchUp:
    def __init__(self, data_dir: Path, initial_state: str) -> None:
        self._marker = data_dir / CATCHING_UP
        fresh = not (data_dir / RAFT_META).exists() and not (data_dir / RAFT_JOURNAL).exists()
        if fresh and initial_state == "existing":
            with open(self._marker, "wb") as handle:
                os.fsync(handle.fileno())
            fsync_dir(data_dir)
        self.active = self._marker.exists()
        if self.active:
            log.info(
                "replacing a member with an empty data directory: this node will not vote or"
                " stand for election until it has caught up with the leader"
            )

    def check(self, has_leader: bool, current_term: int, last_log_term: int) -> None:
        """Clear the guard once a leader's current-term log has reached this node."""
        if not self.active or not has_leader or current_term == 0:
            return
        if last_log_term != current_term:
            return
        self._marker.unlink()
        fsync_dir(self._marker.parent)
        self.active = False
        log.info("caught up with the leader of term %d: voting again", current_term)
