"""Peer-message compression: PySyncObj deflates every message; kvnode sends small ones stored.

PySyncObj's TCP connection runs `zlib.compress(pickle.dumps(message), 3)` on
every message and `zlib.decompress` on every receipt. For the small messages
that make up the commit path (one append-entries, one acknowledgement) the
compressor's set-up alone costs more than the encryption, and it sits on every
hop of every write. Here messages below `COMPRESS_FROM_BYTES` are framed as
deflate *stored* blocks: still a valid zlib stream, so the receiving side (and
an unmodified PySyncObj peer) decodes it with the same `zlib.decompress`.
Large messages (log batches, snapshot chunks) are still compressed.

Inflation is bounded by the frame limit (no decompression bombs). The adapter
(adapter.py) puts `PeerZlib` in place of PySyncObj's zlib.
"""

from __future__ import annotations

import struct
import zlib

from kvnode.raft.pysyncobj.peer_connection import frame_limit

COMPRESS_FROM_BYTES = 64 * 1024
COMPRESSION_LEVEL = 3  # PySyncObj's own choice for the messages it still compresses
ZLIB_HEADER_NO_COMPRESSION = b"\x78\x01"  # deflate, 32 KiB window, check bits for "stored"
STORED_BLOCK_LIMIT = 0xFFFF


def stored_zlib_stream(data: bytes) -> bytes:
    """`data` as a zlib stream of stored (uncompressed) deflate blocks (RFC 1950/1951)."""
    parts = [ZLIB_HEADER_NO_COMPRESSION]
    offset = 0
    while True:
        block = data[offset : offset + STORED_BLOCK_LIMIT]
        offset += len(block)
        final = offset >= len(data)
        parts.append(struct.pack("<BHH", 1 if final else 0, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
        if final:
            break
    parts.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(parts)


def compress(data: bytes, level: int = COMPRESSION_LEVEL) -> bytes:
    if len(data) < COMPRESS_FROM_BYTES:
        return stored_zlib_stream(data)
    return zlib.compress(data, level)


def decompress(data: bytes) -> bytes:
    """zlib.decompress that refuses to inflate beyond the largest legitimate message."""
    inflater = zlib.decompressobj()
    limit = frame_limit.max_bytes
    inflated = inflater.decompress(data, limit)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"a peer message inflates beyond {limit} bytes, or is cut short")
    return inflated


class PeerZlib:
    """Stands in for the `zlib` module inside PySyncObj's tcp_connection."""

    compress = staticmethod(compress)
    decompress = staticmethod(decompress)
