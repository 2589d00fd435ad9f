"""Shared on-disk conventions: the file header and crash-safe file replacement.

Every kvnode file starts with a 10-byte header (little-endian):

    magic   4 bytes  b"KVN\\0"
    kind    4 bytes  b"WAL\\0", b"CKPT", b"META" or b"SNAP"
    version u16      format version of that kind

so a node can tell its own files from foreign ones and refuse files written by
a newer build instead of misreading them.

Replaced files (checkpoint, metadata, snapshots) are never rewritten in place:
`atomic_write` writes `<name>.tmp`, fsyncs it, renames it over the old file and
fsyncs the directory, so a crash at any instant leaves either the old or the
new file, complete.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from kvnode.storage.errors import CorruptFile, NotKvnodeFile, StorageError, UnsupportedFormat

CRC = struct.Struct("<I")  # the crc32 that ends every small kvnode file

MAGIC = b"KVN\x00"
HEADER = struct.Struct("<4s4sH")
HEADER_SIZE = HEADER.size

KIND_WAL = b"WAL\x00"
KIND_CHECKPOINT = b"CKPT"
KIND_METADATA = b"META"
KIND_SNAPSHOT = b"SNAP"

TMP_SUFFIX = ".tmp"
SYNC_CHUNK_BYTES = 4 * 1024 * 1024

FaultHook = Callable[[str], None]
"""Called with a step name at each point of a crash-sensitive sequence (tests crash there)."""


def no_fault(_step: str) -> None:
    """The production fault hook: does nothing."""


def encode_header(kind: bytes, version: int) -> bytes:
    return HEADER.pack(MAGIC, kind, version)


def check_header(data: bytes | memoryview, kind: bytes, max_version: int, path: Path) -> int:
    """Validate a file header and return its version.

    Raises NotKvnodeFile for foreign content and UnsupportedFormat for a newer version.
    """
    if len(data) < HEADER_SIZE:
        raise NotKvnodeFile(path, f"file is {len(data)} bytes, shorter than a kvnode header")
    magic, found_kind, version = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise NotKvnodeFile(path, f"not a kvnode file (magic {bytes(magic)!r})", offset=0)
    if found_kind != kind:
        raise NotKvnodeFile(
            path, f"expected a {kind!r} file, found a {bytes(found_kind)!r} file", offset=4
        )
    if version > max_version:
        raise UnsupportedFormat(
            path,
            f"format version {version} is newer than this kvnode supports ({max_version}); "
            "upgrade kvnode",
            offset=8,
        )
    return int(version)


def fsync_dir(directory: Path) -> None:
    """Make a rename or file creation in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, data: bytes, *, durable: bool, fault_hook: FaultHook = no_fault
) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never a mix.

    With durable=False the fsyncs are skipped (fsync=never): still atomic against
    a process crash, not against power loss.
    """
    tmp = write_temporary(path, data, durable=durable, fault_hook=fault_hook)
    os.replace(tmp, path)
    fault_hook(f"{path.name}:renamed")
    if durable:
        fsync_dir(path.parent)
    fault_hook(f"{path.name}:dir-synced")


def write_temporary(
    path: Path, data: bytes, *, durable: bool, fault_hook: FaultHook = no_fault
) -> Path:
    """The first half of `atomic_write`: `data` in `path`'s temporary sibling, synced. The
    caller renames it over `path`, then syncs the directory."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        unsynced = 0
        while view:
            written = os.write(fd, view[:SYNC_CHUNK_BYTES])
            view = view[written:]
            unsynced += written
            if durable and unsynced >= SYNC_CHUNK_BYTES and view:
                # A large file (a checkpoint of millions of keys) goes to disk a chunk at a
                # time: one final flush of hundreds of MB would queue every other fsync on
                # the disk behind it, the Raft journal's included (a stalled heartbeat).
                os.fdatasync(fd)
                unsynced = 0
        fault_hook(f"{path.name}:tmp-written")
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    fault_hook(f"{path.name}:tmp-synced")
    return tmp


def check_crc(
    data: bytes | memoryview,
    path: Path,
    error: type[StorageError] = CorruptFile,
    consequence: str = "the file is damaged",
) -> int:
    """Verify a file whose last 4 bytes are the crc32 of all before them; return the CRC.

    A whole-file checksum cannot say which byte is wrong, so the error names the
    offset of the checksum and the range it covers.
    """
    end = len(data) - CRC.size
    (stored,) = CRC.unpack_from(data, end)
    if zlib.crc32(memoryview(data)[:end]) != stored:
        raise error(
            path,
            f"checksum mismatch, {consequence}: bytes 0 to {end} do not match the crc32 stored"
            " at this offset",
            end,
        )
    return int(stored)


def encode_small_file(kind: bytes, version: int, body: bytes) -> bytes:
    """A whole small file: header, body, and the crc32 of both (checkpoint metadata, Raft
    meta, state images). Its CRC is the last 4 bytes."""
    data = encode_header(kind, version) + body
    return data + CRC.pack(zlib.crc32(data))


def check_small_file(
    data: bytes | memoryview,
    kind: bytes,
    max_version: int,
    path: Path,
    *,
    min_body: int = 0,
    error: type[StorageError] = CorruptFile,
    consequence: str = "the file is damaged",
) -> tuple[int, int]:
    """Verify a file written by `encode_small_file`; returns (version, crc). The body is
    `data[HEADER_SIZE:-CRC.size]`."""
    version = check_header(data, kind, max_version, path)
    if len(data) < HEADER_SIZE + min_body + CRC.size:
        raise error(path, f"file is truncated ({len(data)} bytes)", len(data))
    return version, check_crc(data, path, error, consequence)
