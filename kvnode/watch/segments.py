"""Watch history segments: the recent changes kept on disk, so that a restarted node serves
watches from the same window of past revisions as one that never stopped.

The state machine recovers from its checkpoint plus the commands logged after it;
replaying those commands reports the changes after the checkpoint again, but the
changes before it are gone from memory. So each checkpoint first writes the changes
made since the previous one as a segment (in the same forked child, or the same
thread), and a starting node reads its segments back before it replays its log.

File format (`<data_dir>/watch/history-<upto>.seg`, integers little-endian)
---------------------------------------------------------------------------
    header   b"KVN\\0" b"WHIS" u16 version=1                        (10 bytes)
    frame    length u32 | crc32 u32 | after u64 | upto u64
    frame*   length u32 | crc32 u32 | kind u8 | revision u64 | create_revision u64
             | key_length u32 | key (UTF-8) | value (the rest; present if kind & 0x80)

The first frame says what the segment holds: *every* change with a revision in
`(after, upto]`. Kinds are 0 put, 1 delete, 2 expire. A segment is written whole
(temporary file, fsync, rename, fsync of the directory), so any damage is
corruption: it is reported, and the history starts after it.

Segments chain when one's `after` is the previous one's `upto`. A node starts from
the longest chain ending at its newest segment. Segments whose changes have all left
the window are deleted when the next one is written.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kvnode.storage.changes import Change, ChangeKind
from kvnode.storage.errors import StorageError
from kvnode.storage.fileformat import (
    HEADER_SIZE,
    TMP_SUFFIX,
    atomic_write,
    check_header,
    encode_header,
    fsync_dir,
)
from kvnode.storage.framing import encode_frame, read_frames

log = logging.getLogger(__name__)

KIND_HISTORY = b"WHIS"
SEGMENT_VERSION = 1
SEGMENT_NAME = re.compile(r"^history-(\d{20})\.seg$")
RANGE = struct.Struct("<QQ")
CHANGE_HEAD = struct.Struct("<BQQI")
HAS_VALUE = 0x80
KIND_CODES: dict[ChangeKind, int] = {"put": 0, "delete": 1, "expire": 2}
KINDS_BY_CODE: dict[int, ChangeKind] = {code: kind for kind, code in KIND_CODES.items()}
MAX_FRAME_BYTES = 1 << 31


@dataclass(frozen=True)
class Segment:
    """Every change with a revision in (after, upto]."""

    after: int
    upto: int
    changes: list[Change]


def segment_path(directory: Path, upto: int) -> Path:
    return directory / f"history-{upto:020d}.seg"


def encode_segment(segment: Segment) -> bytes:
    parts = [
        encode_header(KIND_HISTORY, SEGMENT_VERSION),
        encode_frame(RANGE.pack(segment.after, segment.upto)),
    ]
    for change in segment.changes:
        key = change.key.encode()
        code = KIND_CODES[change.kind] | (HAS_VALUE if change.value is not None else 0)
        head = CHANGE_HEAD.pack(code, change.revision, change.create_revision, len(key))
        parts.append(encode_frame(head + key + (change.value or b"")))
    return b"".join(parts)


def decode_segment(data: bytes, path: Path) -> Segment:
    """The segment in `data`; StorageError naming the file and offset if it is damaged."""
    check_header(data, KIND_HISTORY, SEGMENT_VERSION, path)
    scan = read_frames(
        data, HEADER_SIZE, path, min_body=RANGE.size, max_body=MAX_FRAME_BYTES, check=_no_check
    )
    if scan.torn_bytes or not scan.frames:
        raise StorageError(path, "damaged segment (a torn or corrupt record)", scan.valid_end)
    after, upto = RANGE.unpack_from(scan.frames[0].body)
    changes = []
    for frame in scan.frames[1:]:
        code, revision, create_revision, key_length = CHANGE_HEAD.unpack_from(frame.body)
        start = CHANGE_HEAD.size
        key = frame.body[start : start + key_length].decode()
        value = frame.body[start + key_length :] if code & HAS_VALUE else None
        kind = KINDS_BY_CODE.get(code & ~HAS_VALUE)
        if kind is None or not after < revision <= upto:
            raise StorageError(
                path, f"a change that does not belong here ({code}, {revision})", frame.offset
            )
        changes.append(Change(kind, key, revision, create_revision, value))
    return Segment(after, upto, changes)


def _no_check(_body: bytes, _offset: int) -> None:
    """Frames are checked by their CRC; their contents by `decode_segment`."""


def write_segment(directory: Path, segment: Segment, keep_from: int, *, durable: bool) -> None:
    """Write `segment`, then delete the segments whose changes are all below `keep_from`
    (the window's floor). Runs with the checkpoint, before it."""
    directory.mkdir(exist_ok=True)
    atomic_write(segment_path(directory, segment.upto), encode_segment(segment), durable=durable)
    dropped = False
    for path, upto in _segment_files(directory):
        if upto < keep_from:
            path.unlink(missing_ok=True)
            dropped = True
    if dropped and durable:
        fsync_dir(directory)


def load_segments(directory: Path) -> list[Segment]:
    """The longest chain of segments ending at the newest one, oldest first. A damaged
    segment ends the chain (it is reported: watches from before it will be refused)."""
    for leftover in directory.glob(f"history-*.seg{TMP_SUFFIX}") if directory.is_dir() else ():
        leftover.unlink()  # a writer killed before its rename: the segment was never there
    chain: list[Segment] = []
    for path, _upto in sorted(_segment_files(directory), key=lambda item: -item[1]):
        try:
            segment = decode_segment(path.read_bytes(), path)
        except (StorageError, OSError, UnicodeDecodeError, struct.error) as exc:
            log.error(
                "watch history: %s is unreadable (%s); watches from before it are refused",
                path,
                exc,
            )
            break
        if chain and segment.upto != chain[-1].after:
            break  # an older chain: the newer one does not continue it
        chain.append(segment)
    return chain[::-1]


def _segment_files(directory: Path) -> Sequence[tuple[Path, int]]:
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = SEGMENT_NAME.match(path.name)
        if match:
            found.append((path, int(match.group(1))))
    return found
