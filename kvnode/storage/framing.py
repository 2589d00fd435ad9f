"""CRC-framed records shared by every append-only kvnode log (WAL, Raft journal).

A frame is `length u32 | crc32 u32 | body`, little-endian, where `length` is
len(body) and `crc32` (zlib) covers the body. `read_frames` walks a file image
and tells a torn tail (a crash mid-append: nothing valid follows, truncate it)
from corruption (a damaged frame with a valid one after it: refuse to start).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path
from struct import Struct
from typing import NamedTuple

from kvnode.storage.errors import CorruptRecord, RecordTooLarge, StorageFailure, TornTail

FRAME = Struct("<II")  # length, crc32


class Frame(NamedTuple):
    offset: int
    body: bytes


class FrameScan(NamedTuple):
    frames: list[Frame]
    valid_end: int  # offset just after the last accepted frame
    torn_bytes: int  # bytes after valid_end that recovery must truncate


BodyCheck = Callable[[bytes, int], None]
"""Validates an intact frame's body at an offset; raises CorruptRecord if unacceptable."""


def encode_frame(body: bytes) -> bytes:
    return FRAME.pack(len(body), zlib.crc32(body)) + body


def decode_frame(buf: bytes, offset: int, min_body: int, max_body: int, path: Path) -> Frame:
    """The intact frame at `offset`; TornTail if the bytes there are not one."""
    if len(buf) - offset < FRAME.size:
        raise TornTail(path, "incomplete record frame", offset)
    length, crc = FRAME.unpack_from(buf, offset)
    start = offset + FRAME.size
    end = start + length
    if length < min_body or end > len(buf):
        raise TornTail(path, f"record length {length} does not fit the file", offset)
    body = buf[start:end]
    if zlib.crc32(body) != crc:
        raise TornTail(path, "record checksum mismatch", offset)
    if length > max_body:
        raise RecordTooLarge(
            path, f"record of {length} bytes exceeds the maximum of {max_body}", offset
        )
    return Frame(offset, body)


def _intact_frame_after(buf: bytes, start: int, min_body: int, max_body: int, path: Path) -> int:
    """Offset of the first intact frame at or after `start`, or -1 (error path only)."""
    for offset in range(start, len(buf) - FRAME.size - min_body + 1):
        try:
            decode_frame(buf, offset, min_body, max_body, path)
        except (TornTail, CorruptRecord):
            continue
        return offset
    return -1


def read_frames(
    buf: bytes,
    start: int,
    path: Path,
    *,
    min_body: int,
    max_body: int,
    check: BodyCheck,
    repair: bool = False,
) -> FrameScan:
    """Decode consecutive frames from `start` to the end of `buf`.

    Raises CorruptRecord (naming file and offset) for damage that a crash
    cannot explain, unless `repair` is set, in which case the scan stops there.
    """
    frames: list[Frame] = []
    offset = start
    while offset < len(buf):
        try:
            frame = decode_frame(buf, offset, min_body, max_body, path)
            check(frame.body, offset)
        except TornTail as torn:
            following = _intact_frame_after(buf, offset + 1, min_body, max_body, path)
            if following >= 0 and not repair:
                raise CorruptRecord(
                    path,
                    f"damaged record ({torn.reason}) followed by a valid record at offset "
                    f"{following}; refusing to start",
                    offset,
                ) from torn
            break
        except CorruptRecord:
            if not repair:
                raise
            break
        frames.append(frame)
        offset += FRAME.size + len(frame.body)
    return FrameScan(frames, offset, len(buf) - offset)


def sync_descriptor(fd: int, path: Path) -> None:
    """fdatasync a duplicated descriptor of `path` (the data and the size, without the
    mtime that fsync would add), then close it. The duplicate lets the sync run in
    another thread while the owner appends to, or even closes, the file."""
    try:
        os.fdatasync(fd)
    except OSError as exc:
        raise StorageFailure(path, f"fsync failed: {exc}") from exc
    finally:
        os.close(fd)


class AppendOnlyFile:
    """A log file opened for appending. Appends go straight to the kernel (they survive a
    process crash); `sync` makes them survive power loss."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = size
        if os.fstat(self._fd).st_size != size:
            self.truncate(size, durable=True)

    @property
    def size(self) -> int:
        return self._size

    def duplicate(self) -> int:
        """A new descriptor of this file, for `sync_descriptor` in another thread."""
        return os.dup(self._fd)

    def append(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            raise StorageFailure(self.path, f"append failed: {exc}") from exc
        self._size += len(data)

    def sync(self) -> None:
        """fdatasync: the data and the file size, without the mtime that fsync would add."""
        sync_descriptor(self.duplicate(), self.path)

    def truncate(self, size: int, *, durable: bool) -> None:
        try:
            os.ftruncate(self._fd, size)
            if durable:
                os.fsync(self._fd)
        except OSError as exc:
            raise StorageFailure(self.path, f"truncate failed: {exc}") from exc
        self._size = size

    def close(self) -> None:
        os.close(self._fd)
