"""The retained change history of one node, which every watch is served from.

The state machine reports each change in the applying thread; watchers read
from the asyncio thread. Changes are kept in apply order with a sequence
number each, so a reader can say "everything from sequence S" cheaply, and
the history knows its `floor`: the lowest revision from which it holds every
change. A watch from below the floor cannot be served without a gap, so it is
refused (410 revision_compacted) rather than answered incompletely.

The history outlives a restart: each checkpoint first writes the changes made
since the previous one as a segment (segments.py, `persist`), and a starting node
loads its segments (`load`) before the WAL replay reports the changes after the
checkpoint. So a restarted node serves the same window as one that never stopped.
A snapshot install (the state replaced by a newer image) empties it: its floor is
then the snapshot's revision + 1.
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from kvnode.storage.changes import Change
from kvnode.watch.segments import Segment, load_segments, write_segment

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

    def __init__(
        self,
        capacity: int,
        capacity_bytes: int,
        directory: Path | None = None,
        *,
        durable: bool = True,
    ) -> None:
        """`directory`: where segments are kept across restarts (None: not kept)."""
        self._directory = directory
        self._durable = durable
        self._persisted = 0  # every change up to this revision is in a segment on disk
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
            self._keep(change)

    def _keep(self, change: Change) -> None:
        """Add one change, evicting the oldest beyond the capacity (lock held)."""
        self._changes.append(change)
        self._bytes += change_size(change)
        if len(self._changes) - self._head > self._capacity or self._bytes > self._capacity_bytes:
            self._evict()

    def applied(self, index: int) -> None:
        with self._lock:
            self._applied = index
        self._notify()

    def reset(self, index: int) -> None:
        """The state is now an image at revision `index`. What is held up to it stays (it is
        the same history on every replica); anything after it will be reported again. If
        what is held does not reach `index` (a snapshot from far ahead), the history
        starts after it."""
        with self._lock:
            if self._floor <= index + 1 <= self._applied + 1:
                self._forget_after(index)
            else:
                self._head_seq += len(self._changes) - self._head
                self._changes, self._head, self._bytes = [], 0, 0
                self._floor = index + 1
                self._persisted = index
            self._applied = index
        self._notify()

    def _forget_after(self, revision: int) -> None:
        end = bisect.bisect_right(self._changes, revision, lo=self._head, key=_revision_of)
        self._bytes -= sum(change_size(change) for change in self._changes[end:])
        del self._changes[end:]

    # -- across restarts -----------------------------------------------------------

    def load(self) -> None:
        """At start, before the state machine: the segments on disk, as if just applied."""
        if self._directory is None:
            return
        segments = load_segments(self._directory)
        if not segments:
            return
        with self._lock:
            self._floor = segments[0].after + 1
            for segment in segments:
                for change in segment.changes:
                    self._keep(change)
            self._applied = self._persisted = segments[-1].upto

    def persist(self, revision: int) -> Callable[[], None] | None:
        """What to run with a checkpoint at `revision`, before it is written: the changes
        since the last segment go into a new one (None: nothing to write). Called in the
        applying thread; the returned function may run in a forked child, so it takes
        no lock."""
        if self._directory is None:
            return None
        with self._lock:
            if revision <= self._persisted:
                return None
            after = max(self._persisted, self._floor - 1)
            start = bisect.bisect_right(self._changes, after, lo=self._head, key=_revision_of)
            end = bisect.bisect_right(self._changes, revision, lo=start, key=_revision_of)
            segment = Segment(after, revision, self._changes[start:end])
            self._persisted = revision
            floor = self._floor
        return functools.partial(
            write_segment, self._directory, segment, floor, durable=self._durable
        )

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
