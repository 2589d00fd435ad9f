"""Names for kvnode's threads as the OS sees them (`top -H`, `ps -L`, /proc/PID/task/TID/comm).

Python names its threads only for itself; every one of them is "python3" to the
OS. Named, an operator can see which thread spends a node's CPU, and
`scripts/bench-vs-etcd.sh` reports the leader's CPU per operation by thread.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

# The main thread (so also the process name in `ps`): the asyncio loop, HTTP, watches.
HTTP_THREAD = "kvnode"
RAFT_THREAD = "kv-raft"  # PySyncObj's tick thread: replication, elections, applying
SYNC_THREAD = "kv-sync"  # the journal's fsync and other slow disk work (journal_sync.py)


def name_os_thread(name: str) -> None:
    """Give the calling thread `name` (at most 15 bytes) where the OS allows it (Linux)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name)
