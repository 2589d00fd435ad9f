"""Peer-message compression: PySyncObj deflates every message; kvnode sends small ones stored.

PySyncObj's TCP connection runs `zlib.compress(pickle.dumps(message), 3)` on
every message and `zlib.decompress` on every receipt. For the small messages
that make up the commit path (one append-entries, one acknowledgement) the
compressor's set-up alone costs more than the encryption, and it sits on every
hop of every write. Here messages below `COMPRESS_FROM_BYTES` are framed as
deflate *stored* blocks: still a valid zlib stream, so the receiving side (and
an unmodified PySyncObj peer) decodes it with the same `zlib.decompress`.
Large messages (log batches, snapshot chunks) are still compressed.

`install` also puts kvnode's guards where PySyncObj reads peer bytes: pickle
that refuses code (`peer_pickle`), bounded frames (`peer_connection`), and
inflation bounded by the same limit (no decompression bombs).
"""

from __future__ import annotations

import struct
import zlib

import pysyncobj.tcp_connection as tcp_connection_module
import pysyncobj.tcp_server as tcp_server_module
import pysyncobj.transport as transport_module

from kvnode.raft import peer_pickle
from kvnode.raft.peer_connection import BoundedTcpConnection

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
    limit = BoundedTcpConnection.max_frame_bytes
    inflater = zlib.decompressobj()
    inflated = inflater.decompress(data, limit)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"a peer message inflates beyond {limit} bytes, or is cut short")
    return inflated


class _PeerZlib:
    """Stands in for the `zlib` module inside PySyncObj's tcp_connection."""

    compress = staticmethod(compress)
    decompress = staticmethod(decompress)


def install(max_value_bytes: int) -> None:
    """Route PySyncObj's peer-message encoding through kvnode's (idempotent): stored zlib
    for small messages, bounded inflation, plain-data unpickling, bounded frames."""
    BoundedTcpConnection.configure(max_value_bytes)
    tcp_connection_module.zlib = _PeerZlib  # type: ignore[attr-defined]
    tcp_connection_module.pickle = peer_pickle  # type: ignore[attr-defined]
    tcp_server_module.TcpConnection = BoundedTcpConnection  # type: ignore[misc]
    transport_module.TcpConnection = BoundedTcpConnection  # type: ignore[misc]
