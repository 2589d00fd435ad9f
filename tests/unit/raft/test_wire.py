"""Peer messages sent stored must decode with plain zlib, at every block boundary."""

from __future__ import annotations

import zlib

import pysyncobj.tcp_connection as tcp_connection_module
from hypothesis import given
from hypothesis import strategies as st

import kvnode.raft.node  # noqa: F401  (installs the peer compression)
from kvnode.raft import wire


@given(st.binary(max_size=3000))
def test_stored_stream_round_trips_through_zlib(data: bytes) -> None:
    assert zlib.decompress(wire.stored_zlib_stream(data)) == data


def test_stored_stream_round_trips_at_block_boundaries() -> None:
    limit = wire.STORED_BLOCK_LIMIT
    for size in (0, 1, limit - 1, limit, limit + 1, 2 * limit, 2 * limit + 7):
        data = bytes(i % 251 for i in range(size))
        assert zlib.decompress(wire.stored_zlib_stream(data)) == data


def test_a_damaged_stored_stream_is_rejected() -> None:
    encoded = bytearray(wire.stored_zlib_stream(b"append entries"))
    encoded[10] ^= 0x01
    try:
        zlib.decompress(bytes(encoded))
    except zlib.error:
        return
    raise AssertionError("a flipped bit in a stored stream went unnoticed")


def test_small_messages_are_stored_and_large_ones_compressed() -> None:
    small = b"x" * 1000
    large = b"x" * wire.COMPRESS_FROM_BYTES
    assert len(wire.compress(small)) > len(small)  # stored: framing overhead only
    assert len(wire.compress(large)) < len(large) // 10
    assert zlib.decompress(wire.compress(large)) == large


def test_pysyncobj_connections_use_it() -> None:
    assert tcp_connection_module.zlib.compress is wire.compress
