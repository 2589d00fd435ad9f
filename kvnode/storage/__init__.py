"""The file-based state machine: WAL, checkpoints, snapshots, TTL and CAS.

This package knows nothing of Raft or HTTP. The Raft node applies entries to it and
snapshots it; the service reads it (under the same lock); `kvnode restore` fills a new
directory from a backup.
"""

from kvnode.storage.machine import Entry, Restored, StateMachine
from kvnode.storage.outcome import Outcome, Status
from kvnode.storage.record import KeyRecord

__all__ = ["Entry", "KeyRecord", "Outcome", "Restored", "StateMachine", "Status"]
