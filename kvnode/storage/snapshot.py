"""Snapshot files: a self-contained, verified state image handed from node to node.

A snapshot has the layout of a checkpoint (image.py) with kind b"SNAP" and an
opaque `extra` blob that the Raft layer fills with its own bookkeeping, so the
whole handoff is one regular file that PySyncObj can stream. Installing one
goes through the normal checkpoint sequence, so it is atomic.
"""

from __future__ import annotations

from pathlib import Path

from kvnode.storage.errors import SnapshotMismatch
from kvnode.storage.fileformat import KIND_SNAPSHOT, atomic_write
from kvnode.storage.image import StateImage, decode_image, encode_image
from kvnode.storage.keyspace import Keyspace


def write_snapshot(
    path: Path, index: int, term: int, keys: Keyspace, extra: bytes, *, durable: bool
) -> None:
    data, _crc = encode_image(KIND_SNAPSHOT, index, term, keys, extra)
    atomic_write(path, data, durable=durable)


def read_snapshot(path: Path) -> StateImage:
    """Read and verify a snapshot; raises SnapshotMismatch if it is damaged."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SnapshotMismatch(path, f"cannot read snapshot: {exc}") from exc
    return decode_image(data, KIND_SNAPSHOT, path, error=SnapshotMismatch)
