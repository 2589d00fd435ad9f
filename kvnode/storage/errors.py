"""Named storage errors, so callers (and tests) can tell one failure from another.

Every error carries the file and, where it applies, the byte offset, because an
operator facing a node that refuses to start needs to know exactly what to
inspect or repair.
"""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Base class: the on-disk state cannot be trusted or cannot be written."""

    def __init__(self, path: Path | str, message: str, offset: int | None = None) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = message
        where = f"{self.path}" if offset is None else f"{self.path} at offset {offset}"
        super().__init__(f"{where}: {message}")


class NotKvnodeFile(StorageError):
    """A file (or directory) that kvnode did not write: wrong magic bytes or foreign content."""


class UnsupportedFormat(StorageError):
    """A file written by a newer kvnode format version than this build understands."""


class CorruptFile(StorageError):
    """A checkpoint or metadata file whose checksum or structure is wrong."""


class CorruptRecord(StorageError):
    """A WAL record that is damaged while valid records follow it: not a torn tail."""


class UnknownOpcode(CorruptRecord):
    """A checksummed WAL record with an opcode this build does not know."""


class RecordTooLarge(CorruptRecord):
    """A checksummed WAL record larger than the configured maximum."""


class TornTail(StorageError):
    """An incomplete or checksum-failing record at the very end of the WAL.

    Raised by the record decoder; recovery catches it and truncates the tail,
    because a crash in the middle of an append leaves exactly this behind.
    """


class SnapshotMismatch(StorageError):
    """A snapshot file that fails verification (checksum, kind or version)."""


class StorageFailure(StorageError):
    """Writing to the data directory failed (disk full, I/O error).

    After this the in-memory state may be ahead of the disk, so the node must
    stop rather than keep serving.
    """
