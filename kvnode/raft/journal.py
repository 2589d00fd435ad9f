"""A durable Raft journal for PySyncObj: CRC-framed, fsynced before anything leaves the node.

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
  file refuses to start instead of forgetting a vote;
- compaction (`deleteEntriesTo`) rewrites the remaining tail atomically;
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
import struct
import threading
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
)
from kvnode.storage.framing import AppendOnlyFile, encode_frame, read_frames, sync_descriptor
from kvnode.storage.layout import RAFT_JOURNAL, RAFT_META

log = logging.getLogger(__name__)

KIND_JOURNAL = b"RJNL"
KIND_META = b"RMET"
JOURNAL_VERSION = 1
ENTRY_HEAD = struct.Struct("<QQ")
META_HEAD = struct.Struct("<QQH")
MAX_ENTRY_BYTES = 256 * 1024 * 1024

Entry = tuple[bytes, int, int]  # PySyncObj's (command, index, term)


class DurableJournal:
    """PySyncObj's Journal interface (add, clear, deleteEntriesFrom/To, [], len, term and
    vote, commit index), made durable."""

    def __init__(
        self, directory: Path, *, durable: bool, dump_file: Path, trailing_entries: int = 0
    ) -> None:
        self.path = directory / RAFT_JOURNAL
        self.meta_path = directory / RAFT_META
        self._durable = durable
        self._dump_dir = dump_file.parent
        # Appends and truncations done (the generation) and how far the last fdatasync
        # reached. `_sync_lock` orders a sync's start and end against truncations and file
        # swaps; appends need no lock (an entry is listed only after its bytes are written).
        self._generation = 0
        self._synced_generation = 0
        self._synced_index = 0
        self._truncations = 0
        self._sync_lock = threading.Lock()
        self.compactions = 0
        # Entries kept before a snapshot's index when compacting (hashicorp/raft's
        # TrailingLogs): a follower a little behind catches up from the log instead of
        # needing the whole snapshot, which on a large state takes seconds to install.
        self._trailing = trailing_entries
        self._entries: list[Entry] = []
        self._offsets: list[int] = []
        if not self.path.exists():
            atomic_write(self.path, encode_header(KIND_JOURNAL, JOURNAL_VERSION), durable=durable)
        self._file = self._recover()
        self._synced_index = self._entries[-1][1] if self._entries else 0
        self._term, self._commit_index, self._voted_for = self._load_meta()
        self._saved_commit_index = self._commit_index

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
        if scan.torn_bytes and self._durable:
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

    @on_storage_error("write the Raft term, vote and commit index")
    def _store_meta(self) -> None:
        voted = (self._voted_for or "").encode()
        body = META_HEAD.pack(self._term, self._commit_index, len(voted)) + voted
        data = encode_small_file(KIND_META, JOURNAL_VERSION, body)
        atomic_write(self.meta_path, data, durable=self._durable)
        self._saved_commit_index = self._commit_index

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
        if not self._durable:
            return self._entries[-1][1] if self._entries else 0
        return self._synced_index

    @on_storage_error("sync the Raft journal")
    def sync_now(self) -> None:
        """One fdatasync for everything changed so far (any thread; group commit).

        The file descriptor is duplicated so that a compaction may swap the file
        while the sync runs: the old file's sync is then merely wasted, and the new
        file was written durably. A truncation during the sync leaves the synced
        index where it was (the entries it covered may be gone)."""
        if not self.unsynced:
            return
        with self._sync_lock:
            generation, truncations = self._generation, self._truncations
            last_index = self._entries[-1][1] if self._entries else 0
            fd = self._file.duplicate()
        sync_descriptor(fd, self.path)
        with self._sync_lock:
            self._synced_generation = max(self._synced_generation, generation)
            if truncations == self._truncations:
                self._synced_index = max(self._synced_index, last_index)

    @property
    def size_bytes(self) -> int:
        return self._file.size

    # -- PySyncObj's Journal interface ------------------------------------------------

    @on_storage_error("append to the Raft journal")
    def add(self, command: bytes, idx: int, term: int) -> None:
        self._offsets.append(self._file.size)
        self._file.append(encode_frame(ENTRY_HEAD.pack(idx, term) + command))
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
        with self._sync_lock:
            self._file.truncate(
                self._offsets[position] if self._offsets else HEADER_SIZE, durable=False
            )
            del self._entries[position:]
            del self._offsets[position:]
            self._generation += 1
            self._truncations += 1
            last_index = self._entries[-1][1] if self._entries else 0
            self._synced_index = min(self._synced_index, last_index)

    @on_storage_error("compact the Raft journal")
    def deleteEntriesTo(self, entryTo: int) -> None:
        """Compaction: keep the entries from list position `entryTo` on, rewritten atomically.

        The snapshot that covers the dropped entries was renamed into place by
        PySyncObj without a directory fsync; make that rename durable first, or
        a power loss could leave neither the entries nor the snapshot.
        """
        if self._durable:
            fsync_dir(self._dump_dir)
        self.compactions += 1  # each follows a snapshot this node wrote
        self._keep_from(max(0, entryTo - self._trailing))

    @on_storage_error("trim the Raft journal to its snapshot")
    def start_at_snapshot(self, snapshot_index: int) -> None:
        """At startup: drop the trailing entries kept before the snapshot, so the log starts
        with the snapshot's previous and last entries, where PySyncObj looks for them
        (finding others there, it would clear the whole log, entries after the snapshot
        included)."""
        positions = [i for i, entry in enumerate(self._entries) if entry[1] == snapshot_index - 1]
        if positions and positions[0] > 0:
            self._keep_from(positions[0])

    def _keep_from(self, position: int) -> None:
        """Keep the entries from list `position` on: the journal rewritten atomically."""
        kept = self._entries[position:]
        parts = [encode_header(KIND_JOURNAL, JOURNAL_VERSION)]
        offsets, offset = [], HEADER_SIZE
        for command, idx, term in kept:
            frame = encode_frame(ENTRY_HEAD.pack(idx, term) + command)
            offsets.append(offset)
            offset += len(frame)
            parts.append(frame)
        atomic_write(self.path, b"".join(parts), durable=self._durable)
        with self._sync_lock:
            self._file.close()
            self._file = AppendOnlyFile(self.path, offset)
            self._entries, self._offsets = kept, offsets
            # Written durably as a whole, so everything in it is synced.
            self._generation += 1
            self._synced_generation = self._generation
            self._synced_index = kept[-1][1] if kept else 0

    @overload
    def __getitem__(self, item: int) -> Entry: ...
    @overload
    def __getitem__(self, item: slice) -> list[Entry]: ...
    def __getitem__(self, item: int | slice) -> Entry | list[Entry]:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

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
        at most once a second, like PySyncObj does."""
        if self._commit_index != self._saved_commit_index:
            self._store_meta()
