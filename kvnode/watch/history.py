"""The retained change history of one node, which every watch is served from.

The state machine reports each change in the applying thread; watchers read
from the asyncio thread. Changes are kept in apply order with a sequence
number each, so a reader can say "everything from sequence S" cheaply, and
the history knows its `floor`: the lowest revision from which it holds every
change. A watch from below the floor cannot be served without a gap, so it is
refused (410 revision_compacted) rather than answered incompletely.

On restart the history is rebuilt by the WAL replay, so its floor is the
checkpoint's index + 1; a snapshot install empties it the same way.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from typing import NamedTuple

from kvnode.storage.changes import Change

CHANGE_OVERHEAD_BYTES = 100  # the tuple, its ints and the list slot around each change
_COMPACT_AFTER = 4096  # drop evicted slots from the list once this many have piled up


class Compacted(Exception):
    """The changes from the asked revision are no longer retained."""

    def __init__(self, oldest_revision: int) -> None:
        super().__init__(f"revisions before {oldest_revision} are no longer retained")
        self.oldest_revision = oldest_revision


class Read(NamedTuple):
    """A consistent view of the history: `changes` carry sequence numbers from
    `first_seq`; `next_seq` follows the last; everything up to `applied` is in."""

    changes: list[Change]
    first_seq: int
    next_seq: int
    floor: int
    applied: int


def change_size(change: Change) -> int:
    return CHANGE_OVERHEAD_BYTES + len(change.key) + len(change.value or b"")


class WatchHistory:
    """A bounded, thread-safe log of the last `capacity` changes (and at most
    `capacity_bytes` of keys and values). It is a `ChangeSink`."""

    def __init__(self, capacity: int, capacity_bytes: int) -> None:
        self._capacity = capacity
        self._capacity_bytes = capacity_bytes
        self._lock = threading.Lock()
        self._changes: list[Change] = []
        self._head = 0  # list position of the oldest retained change
        self._head_seq = 0  # its sequence number
        self._bytes = 0
        self._floor = 1
        self._applied = 0
        self._listener: Callable[[], None] | None = None
        self._notified = False

    # -- the applying thread -------------------------------------------------------

    def changed(self, change: Change) -> None:
        with self._lock:
            self._changes.append(change)
            self._bytes += change_size(change)
            if (
                len(self._changes) - self._head > self._capacity
                or self._bytes > self._capacity_bytes
            ):
                self._evict()

    def applied(self, index: int) -> None:
        with self._lock:
            self._applied = index
        self._notify()

    def reset(self, index: int) -> None:
        with self._lock:
            self._head_seq += len(self._changes) - self._head
            self._changes, self._head, self._bytes = [], 0, 0
            self._applied = index
            self._floor = index + 1
        self._notify()

    def _evict(self) -> None:
        while self._head < len(self._changes) and (
            len(self._changes) - self._head > self._capacity or self._bytes > self._capacity_bytes
        ):
            oldest = self._changes[self._head]
            self._bytes -= change_size(oldest)
            self._floor = max(self._floor, oldest.revision + 1)
            self._head += 1
            self._head_seq += 1
        if self._head >= _COMPACT_AFTER and self._head * 2 >= len(self._changes):
            del self._changes[: self._head]
            self._head = 0

    # -- notifying the reader -------------------------------------------------------

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call `listener` (from the applying thread) when something was applied since the
        last `read`; at most once until the next read. None: nobody is listening."""
        with self._lock:
            self._listener, self._notified = listener, False

    def _notify(self) -> None:
        listener = self._listener
        if listener is None or self._notified:
            return
        self._notified = True
        listener()

    # -- the reading thread -------------------------------------------------------

    def read(self, from_seq: int) -> Read:
        """The retained changes with sequence numbers from `from_seq` (or the oldest kept)."""
        with self._lock:
            self._notified = False
            return self._read_from(self._head + max(0, from_seq - self._head_seq))

    def since(self, revision: int | None) -> Read:
        """The retained changes at `revision` and after (None: after the applied index);
        Compacted if some of them are gone."""
        with self._lock:
            if revision is None:
                revision = self._applied + 1
            if revision < self._floor:
                raise Compacted(self._floor)
            start = bisect.bisect_left(self._changes, revision, lo=self._head, key=_revision_of)
            return self._read_from(start)

    def _read_from(self, start: int) -> Read:
        """From list position `start` up to the applied index: a command whose changes are
        being added right now is left for the next read, whole."""
        end = len(self._changes)
        if end > start and self._changes[-1].revision > self._applied:
            end = bisect.bisect_right(
                self._changes, self._applied, lo=start, hi=end, key=_revision_of
            )
        first_seq = self._head_seq + (start - self._head)
        return Read(
            self._changes[start:end], first_seq, first_seq + end - start, self._floor, self._applied
        )

    @property
    def applied_index(self) -> int:
        return self._applied


def _revision_of(change: Change) -> int:
    return change.revision
