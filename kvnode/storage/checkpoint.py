"""Checkpoints: `state.data` (the state image) plus `metadata.bin`, written crash-safely.

The sequence, each file replaced with tmp + fsync + rename + fsync(dir):

    1. state.data      the full image at last_applied (format in image.py)
    2. metadata.bin    index, term and CRC of that image
    3. wal.log         truncated back to its header (done by the caller)

A crash before step 1's rename leaves the old checkpoint and the full WAL; the
WAL records it covers are skipped on replay by index, so a crash after step 1
or 2 is harmless too.

`metadata.bin` layout (little-endian):

    header   b"KVN\\0" b"META" u16 version=1     (10 bytes)
    index    u64   last applied index covered by the checkpoint
    term     u64   its term
    ckpt_crc u32   the CRC of that state.data
    crc32    u32   zlib.crc32 of every byte before it

Recovery accepts a metadata index *older* than the checkpoint's (the crash fell
between the two renames) and repairs it, but refuses a *newer* one or a
different CRC at the same index: then `state.data` is not the file the node
wrote, and serving from it would be serving data no one can vouch for.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from kvnode.storage.errors import CorruptFile
from kvnode.storage.fileformat import (
    CRC,
    HEADER_SIZE,
    KIND_CHECKPOINT,
    KIND_METADATA,
    FaultHook,
    atomic_write,
    check_small_file,
    encode_small_file,
    no_fault,
)
from kvnode.storage.image import StateImage, decode_image, encode_image
from kvnode.storage.keyspace import Keyspace
from kvnode.storage.layout import METADATA_FILE, STATE_FILE

log = logging.getLogger(__name__)

METADATA_VERSION = 1
METADATA_BODY = struct.Struct("<QQI")
CHECKPOINT_STEPS = (
    *(
        f"{name}:{step}"
        for name in (STATE_FILE, METADATA_FILE)
        for step in ("tmp-written", "tmp-synced", "renamed", "dir-synced")
    ),
    "wal.log:truncated",
)
"""Names passed to the fault hook, in order, during one checkpoint."""


@dataclass(frozen=True, slots=True)
class Metadata:
    index: int
    term: int
    checkpoint_crc: int


def encode_metadata(meta: Metadata) -> bytes:
    return encode_small_file(
        KIND_METADATA,
        METADATA_VERSION,
        METADATA_BODY.pack(meta.index, meta.term, meta.checkpoint_crc),
    )


def decode_metadata(data: bytes, path: Path) -> Metadata:
    expected = HEADER_SIZE + METADATA_BODY.size + CRC.size
    if len(data) > expected:
        raise CorruptFile(path, f"metadata is {len(data)} bytes, expected {expected}", expected)
    check_small_file(data, KIND_METADATA, METADATA_VERSION, path, min_body=METADATA_BODY.size)
    return Metadata(*METADATA_BODY.unpack_from(data, HEADER_SIZE))


def write_checkpoint(
    directory: Path,
    index: int,
    term: int,
    keys: Keyspace,
    *,
    durable: bool,
    fault_hook: FaultHook = no_fault,
) -> int:
    """Steps 1 and 2 of the sequence; returns the size of state.data."""
    image, crc = encode_image(KIND_CHECKPOINT, index, term, keys)
    atomic_write(directory / STATE_FILE, image, durable=durable, fault_hook=fault_hook)
    atomic_write(
        directory / METADATA_FILE,
        encode_metadata(Metadata(index, term, crc)),
        durable=durable,
        fault_hook=fault_hook,
    )
    return len(image)


def load_checkpoint(directory: Path, *, durable: bool) -> StateImage:
    """Read and cross-check state.data and metadata.bin."""
    state_path = directory / STATE_FILE
    meta_path = directory / METADATA_FILE
    image = decode_image(state_path.read_bytes(), KIND_CHECKPOINT, state_path)
    if meta_path.exists():
        meta = decode_metadata(meta_path.read_bytes(), meta_path)
    elif image.index == 0:
        meta = Metadata(0, 0, 0)  # a crash while initialising the directory
    else:
        raise CorruptFile(meta_path, "missing, but state.data exists")
    if meta.index > image.index:
        raise CorruptFile(
            meta_path,
            f"metadata names index {meta.index} but state.data holds the older index "
            f"{image.index}: state.data was replaced or rolled back",
        )
    if meta.index == image.index and meta.checkpoint_crc != image.crc:
        raise CorruptFile(
            state_path,
            f"CRC {image.crc:#010x} differs from the {meta.checkpoint_crc:#010x} recorded in "
            "metadata.bin: this is not the checkpoint the node wrote",
        )
    if meta.index < image.index:
        log.info(
            "%s: metadata at index %d lags state.data at %d (crash between checkpoint steps); "
            "repairing",
            meta_path,
            meta.index,
            image.index,
        )
        atomic_write(
            meta_path,
            encode_metadata(Metadata(image.index, image.term, image.crc)),
            durable=durable,
        )
    return image
