"""A durable Raft journal for PySyncObj: CRC-framed, on disk before anything vouches for it.

PySyncObj's own FileJournal is an mmap that is never synced, stores term and
vote without fsync and silently resets them if unreadable. This replacement
keeps PySyncObj's Journal interface but:

- appends CRC-framed entries (framing.py) to `raft.journal`; a torn tail is
  truncated on start, damage in the middle refuses to start;
- every append or truncation bumps a *generation*; `sync_now()` makes
  everything up to the current generation durable with one fdatasync, and
  records how far that reached (`synced_generation`, `synced_index`). The
  tick thread does not call it: `JournalSyncer` (journal_sync.py) runs it in
  its own thread, and `SyncedTransport` holds back every acknowledgement or
  vote until the generation it depends on is synced (Raft's "persist before
  you reply"); entries appended meanwhile share the next fsync;
- term and vote go to `raft.meta` with tmp + fsync + rename + fsync(dir)
  *before* PySyncObj sends the vote that depends on them; an unreadable meta
  file refuses to start instead of forgetting a vote, and so do Raft files that
  no longer fit together: a journal gone while `raft.meta` exists (the journal is
  created first, so its entries were lost), or a journal that starts after index 1
  (or is empty while entries were committed) with no `raft.snapshot` holding what
  came before;
- compaction (`deleteEntriesTo`) forgets the compacted entries at once and
  leaves rewriting the file without them to the sync thread (`run_later`): a
  new file with the live part, synced, swapped in under the lock, and the
  directory synced before anything in it counts as synced;
- the commit index, a hint for faster restarts, is written in the sync thread
  too; term and vote are written at once (a vote must be durable before it
  is sent);
- a write that fails (disk full, I/O error, no descriptors) stops the node
  (`failstop.py`) rather than leaving PySyncObj to retry it every tick.

`raft.journal` layout: header b"KVN\\0" b"RJNL" u16 version=1, then frames
whose body is `index u64 | term u64 | command bytes` (PySyncObj's encoded
command). `raft.meta`: header b"KVN\\0" b"RMET" u16 version=1, then
`term u64 | commit_index u64 | voted_for_len u16 | voted_for (UTF-8)` and a
crc32 of all preceding bytes.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import overload

from kvnode.raft.failstop import on_storage_error
from kvnode.storage.errors import CorruptFile, CorruptRecord
from kvnode.storage.fileformat import (
    HEADER_SIZE,
    atomic_write,
    check_header,
    check_small_file,
    encode_header,
    encode_small_file,
    fsync_dir,
    write_temporary,
)
from kvnode.storage.framing import AppendOnlyFile, encode_frame, read_frames, sync_descriptor
from kvnode.storage.layout import RAFT_JOURNAL, RAFT_META
from kvnode.storage.timings import Timings

log = logging.getLogger(__name__)

KIND_JOURNAL = b"RJNL"
KIND_META = b"RMET"
JOURNAL_VERSION = 1
ENTRY_HEAD = struct.Struct("<QQ")
META_HEAD = struct.Struct("<QQH")
MAX_ENTRY_BYTES = 256 * 1024 * 1024

Entry = tuple[bytes, int, int]  # PySyncObj's (command, index, term)
RunLater = Callable[[Callable[[], None], str], None]  # (task, what it does, for errors)


def run_now(task: Callable[[], None], _what: str) -> None:
    task()


class DurableJournal:
    """PySyncObj's Journal interface (add, clear, deleteEntriesFrom/To, [], len, term and
    vote, commit index), made durable."""

    def __init__(
        self,
        directory: Path,
        *,
        durable: bool,
        dump_file: Path,
        trailing_entries: int = 0,
        trailing_bytes: int | None = None,
    ) -> None:
        self.path = directory / RAFT_JOURNAL
        self.fsync_timings = Timings()  # for /metrics
        self.meta_path = directory / RAFT_META
        self._durable = durable
        self._dump_dir = dump_file.parent
        self._dump_file = dump_file
        # Appends and truncations done (the generation) and how far the last fdatasync
        # reached. `_sync_lock` guards the file, the entry lists and these counters; it is
        # never held during an fsync. `_swap_lock` keeps a sync from another thread from
        # counting a swapped-in file before the directory holds it (_rewrite_live_part).
        self._generation = 0
        self._synced_generation = 0
        self._synced_index = 0
        self._truncations = 0
        self._sync_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._commit_hint_queued = False
        # Where slow, non-urgent disk work runs: the node's sync thread (JournalSyncer).
        self.run_later: RunLater = run_now
        self.compactions = 0
        # Entries kept before a snapshot's index when compacting (hashicorp/raft's
        # TrailingLogs): a follower a little behind catches up from the log instead of
        # needing the whole snapshot, which on a large state takes seconds to install.
        self._trailing = trailing_entries
        self._trailing_bytes = trailing_bytes  # and no more bytes of them than this
        self._entries: list[Entry] = []
        self._offsets: list[int] = []
        if not self.path.exists():
            if self.meta_path.exists():
                raise CorruptFile(
                    self.path,
                    f"missing while {self.meta_path.name} exists: the entries this node"
                    " stored (and perhaps acknowledged) are gone",
                )
            atomic_write(self.path, encode_header(KIND_JOURNAL, JOURNAL_VERSION), durable=durable)
        self._file = self._recover()
        self._synced_index = self._last_index()
        self._term, self._commit_index, self._voted_for = self._load_meta()
        self._saved_commit_index = self._commit_index
        self._check_snapshot_present()

    # -- recovery ------------------------------------------------------------------

    def _recover(self) -> AppendOnlyFile:
        buf = self.path.read_bytes()
        check_header(buf, KIND_JOURNAL, JOURNAL_VERSION, self.path)

        def accept(body: bytes, offset: int) -> None:
            index, term = ENTRY_HEAD.unpack_from(body, 0)
            if self._entries and index != self._entries[-1][1] + 1:
                raise CorruptRecord(
                    self.path,
                    f"entry index {index} does not follow {self._entries[-1][1]}",
                    offset,
                )
            self._entries.append((body[ENTRY_HEAD.size :], index, term))
            self._offsets.append(offset)

        scan = read_frames(
            buf,
            HEADER_SIZE,
            self.path,
            min_body=ENTRY_HEAD.size,
            max_body=MAX_ENTRY_BYTES,
            check=accept,
        )
        if scan.torn_bytes:
            log.warning(
                "%s: truncating %d bytes of torn tail at offset %d",
                self.path,
                scan.torn_bytes,
                scan.valid_end,
            )
        file = AppendOnlyFile(self.path, scan.valid_end)
        if self._durable:
            # What a crashed process wrote may still be only in the page cache: it counts
            # as synced from here on, so make it so (and the torn tail's truncation).
            file.sync()
        return file

    def _load_meta(self) -> tuple[int, int, str | None]:
        if not self.meta_path.exists():
            if self._entries and self._entries[-1][2] > 0:
                raise CorruptFile(
                    self.meta_path, "missing while the journal holds entries of term > 0"
                )
            return 0, 1, None
        data = self.meta_path.read_bytes()
        check_small_file(
            data,
            KIND_META,
            JOURNAL_VERSION,
            self.meta_path,
            min_body=META_HEAD.size,
            consequence="term and vote are unknown",
        )
        term, commit_index, voted_len = META_HEAD.unpack_from(data, HEADER_SIZE)
        start = HEADER_SIZE + META_HEAD.size
        voted = data[start : start + voted_len].decode() if voted_len else None
        return term, commit_index, voted

    def _check_snapshot_present(self) -> None:
        """Entries before the journal's first one exist only in the Raft snapshot: without
        it the node would lead or follow with a log it cannot apply from the start."""
        if self._dump_file.exists():
            return
        first = self._entries[0][1] if self._entries else None
        if first is not None and first > 1:
            raise CorruptFile(
                self._dump_file,
                f"missing while {self.path.name} starts at entry {first}: the entries"
                " before it are only in the snapshot",
            )
        if first is None and self._commit_index > 1:
            raise CorruptFile(
                self._dump_file,
                f"missing while {self.meta_path.name} records entries committed up to"
                f" {self._commit_index} and {self.path.name} holds none",
            )

    @on_storage_error("write the Raft term, vote and commit index")
    def _store_meta(self) -> None:
        with self._meta_lock:  # the tick thread (a vote) and the sync thread (the hint)
            commit_index = self._commit_index
            voted = (self._voted_for or "").encode()
            body = META_HEAD.pack(self._term, commit_index, len(voted)) + voted
            data = encode_small_file(KIND_META, JOURNAL_VERSION, body)
            atomic_write(self.meta_path, data, durable=self._durable)
            self._saved_commit_index = commit_index

    # -- durability ------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Changes (appends and truncations) made so far."""
        return self._generation

    @property
    def synced_generation(self) -> int:
        """Changes known to be on disk (all of them when the node runs without fsync)."""
        return self._synced_generation if self._durable else self._generation

    @property
    def unsynced(self) -> bool:
        return self.synced_generation != self._generation

    @property
    def synced_index(self) -> int:
        """The last entry index known to be on disk: the leader's own copy counts towards a
        commit only up to here."""
        return self._synced_index if self._durable else self._last_index()

    @on_storage_error("sync the Raft journal")
    def sync_now(self) -> None:
        """One fdatasync for everything changed so far (any thread; group commit).

        The file descriptor is duplicated so that a compaction may swap the file
        while the sync runs: the old file's sync is then merely wasted, and the new
        file was written durably. A truncation during the sync leaves the synced
        index where it was (the entries it covered may be gone)."""
        if not self.unsynced:
            return
        with self._swap_lock:
            with self._sync_lock:
                generation, truncations = self._generation, self._truncations
                last_index = self._last_index()
                fd = self._file.duplicate()
            with self.fsync_timings.timing():
                sync_descriptor(fd, self.path)
            with self._sync_lock:
                self._synced_generation = max(self._synced_generation, generation)
                if truncations == self._truncations:
                    self._synced_index = max(self._synced_index, last_index)

    @property
    def size_bytes(self) -> int:
        return self._file.size

    @property
    def live_bytes(self) -> int:
        """The bytes of the entries not compacted away (the file keeps forgotten ones until
        the sync thread rewrites it)."""
        with self._sync_lock:
            return self._file.size - self._offsets[0] if self._offsets else 0

    # -- PySyncObj's Journal interface ------------------------------------------------

    @on_storage_error("append to the Raft journal")
    def add(self, command: bytes, idx: int, term: int) -> None:
        frame = encode_frame(ENTRY_HEAD.pack(idx, term) + command)
        with self._sync_lock:
            self._offsets.append(self._file.size)
            self._file.append(frame)
            self._entries.append((command, idx, term))
            self._generation += 1

    @on_storage_error("clear the Raft journal")
    def clear(self) -> None:
        self._truncate_at(0)

    @on_storage_error("truncate the Raft journal")
    def deleteEntriesFrom(self, entryFrom: int) -> None:
        """Drop the entries from list position `entryFrom` on (a conflicting suffix)."""
        if entryFrom < len(self._entries):
            self._truncate_at(entryFrom)

    def _truncate_at(self, position: int) -> None:
        """Drop the entries from list `position` on. Position 0 empties the file, including
        entries compaction forgot but has not rewritten away yet: kept before new entries
        of other indexes, they would make the file unreadable at the next start."""
        with self._sync_lock:
            self._file.truncate(self._offsets[position] if position else HEADER_SIZE, durable=False)
            del self._entries[position:]
            del self._offsets[position:]
            self._generation += 1
            self._truncations += 1
            self._synced_index = min(self._synced_index, self._last_index())

    def _last_index(self) -> int:
        return self._entries[-1][1] if self._entries else 0

    @on_storage_error("compact the Raft journal")
    def deleteEntriesTo(self, entryTo: int) -> None:
        """Compaction: forget the entries before list position `entryTo` (but the trailing
        ones). The file loses them later, in the sync thread (`_rewrite_live_part`): the
        rewrite and its fsyncs would hold the tick thread up for as long as the disk takes.
        A restart before that finds them still in the file and trims to the snapshot
        (`start_at_snapshot`)."""
        self.compactions += 1  # each follows a snapshot this node wrote
        self._forget_before(self._trailing_start(entryTo))
        self.run_later(self._rewrite_live_part, "compact the Raft journal")

    def _trailing_start(self, entry_to: int) -> int:
        """The first list position kept when compacting to `entry_to`: the trailing entries
        before it, no more of them than `trailing_bytes` of large values hold."""
        start = max(0, entry_to - self._trailing)
        if self._trailing_bytes is not None and start < entry_to:
            with self._sync_lock:
                end = self._offsets[entry_to] if entry_to < len(self._offsets) else self._file.size
                while start < entry_to and end - self._offsets[start] > self._trailing_bytes:
                    start += 1
        return start

    def _forget_before(self, position: int) -> None:
        with self._sync_lock:
            del self._entries[:position]
            del self._offsets[:position]

    def _rewrite_live_part(self) -> None:
        """Drop the forgotten entries from the file: copy the live part to a new file and
        sync it (no lock held), then under the lock add what was appended meanwhile and
        swap the files; the directory is synced before anything counts as synced in the
        new file. A truncation meanwhile abandons the rewrite (the next one retries)."""
        if self._durable:
            # PySyncObj renamed the snapshot covering the dropped entries into place without
            # a directory fsync: make it durable first, or a power loss could leave neither.
            fsync_dir(self._dump_dir)
        with self._sync_lock:
            if not self._offsets or self._offsets[0] == HEADER_SIZE:
                return  # nothing forgotten (or everything: a clear() will truncate)
            start, end, truncations = self._offsets[0], self._file.size, self._truncations
            last_index = self._last_index()
            source = os.open(self.path, os.O_RDONLY)  # the file in use (swapped only here)
        try:
            live = encode_header(KIND_JOURNAL, JOURNAL_VERSION) + os.pread(
                source, end - start, start
            )
            tmp = write_temporary(self.path, live, durable=self._durable)
            with self._swap_lock:
                with self._sync_lock:
                    if truncations != self._truncations:
                        tmp.unlink()
                        return
                    size = self._file.size
                    with open(tmp, "ab") as handle:
                        handle.write(os.pread(source, size - end, end))  # appended meanwhile
                    os.replace(tmp, self.path)
                    shift = start - HEADER_SIZE
                    self._file.close()
                    self._file = AppendOnlyFile(self.path, size - shift)
                    self._offsets = [offset - shift for offset in self._offsets]
                    self._generation += 1  # the copied tail is not synced in the new file
                    self._synced_index = min(self._synced_index, last_index)
                if self._durable:
                    fsync_dir(self.path.parent)
                with self._sync_lock:
                    if truncations == self._truncations:
                        self._synced_index = max(self._synced_index, last_index)
        finally:
            os.close(source)

    @on_storage_error("trim the Raft journal to its snapshot")
    def start_at_snapshot(self, snapshot_index: int) -> None:
        """At startup: drop the trailing entries kept before the snapshot, so the log starts
        with the snapshot's previous and last entries, where PySyncObj looks for them
        (finding others there, it would clear the whole log, entries after the snapshot
        included)."""
        positions = [i for i, entry in enumerate(self._entries) if entry[1] == snapshot_index - 1]
        if positions and positions[0] > 0:
            self._forget_before(positions[0])
            self._rewrite_live_part()

    @overload
    def __getitem__(self, item: int) -> Entry: ...
    @overload
    def __getitem__(self, item: slice) -> list[Entry]: ...
    def __getitem__(self, item: int | slice) -> Entry | list[Entry]:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_index(self) -> int:
        """The index of the last entry (0: none)."""
        return self._last_index()

    def term_at(self, index: int) -> int | None:
        """The term of the entry at `index`, or None if this journal does not hold it."""
        entries = self._entries
        if not entries or not entries[0][1] <= index <= entries[-1][1]:
            return None
        return entries[index - entries[0][1]][2]

    def entries_after(self, index: int) -> list[Entry]:
        """The entries past `index`, copied in one step (safe from any thread)."""
        entries = self._entries
        if not entries:
            return []
        return entries[max(index + 1 - entries[0][1], 0) :]

    def _destroy(self) -> None:
        self.sync_now()
        if self._commit_index != self._saved_commit_index:
            self._store_meta()
        self._file.close()

    def flush(self) -> None:
        self.sync_now()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        self._commit_index = raftCommitIndex

    def getRaftCommitIndex(self) -> int:
        """Never past the end of the journal (a commit index is only meaningful for entries
        the node still has)."""
        last = self._entries[-1][1] if self._entries else 1
        return min(self._commit_index, last)

    def setCurrentTerm(self, term: int, votedForNodeId: str | None) -> None:
        self._term, self._voted_for = term, votedForNodeId
        self._store_meta()

    def getCurrentTerm(self) -> int:
        return self._term

    def getVotedForNodeId(self) -> str | None:
        return self._voted_for

    def onOneSecondTimer(self) -> None:
        """The commit index is a hint for faster restarts, not a safety property: store it
        at most once a second, like PySyncObj does, in the sync thread."""
        if self._commit_index != self._saved_commit_index and not self._commit_hint_queued:
            self._commit_hint_queued = True
            self.run_later(self._store_commit_hint, "write the Raft commit index")

    def _store_commit_hint(self) -> None:
        self._commit_hint_queued = False
        self._store_meta()
