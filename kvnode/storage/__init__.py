"""The file-based state machine: WAL, checkpoints, snapshots, TTL and CAS.

This package knows nothing of Raft or HTTP; `kvnode.raft` is its only caller.
"""

from kvnode.storage.machine import Entry, Restored, StateMachine
from kvnode.storage.outcome import Outcome, Status
from kvnode.storage.record import KeyRecord

__all__ = ["Entry", "KeyRecord", "Outcome", "Restored", "StateMachine", "Status"]
