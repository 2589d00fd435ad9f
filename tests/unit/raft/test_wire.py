"""Peer messages: sent stored they decode with plain zlib; received, they can neither run
code nor inflate without bound."""

from __future__ import annotations

import os
import pickle
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvnode.raft.pysyncobj import peer_pickle, wire
from kvnode.raft.pysyncobj.peer_connection import frame_length_refused, frame_limit


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


def test_peer_messages_decode_plain_data_and_refuse_any_code() -> None:
    message = {"type": "append_entries", "entries": [(b"cmd", 7, 2)], "commit_index": 6}
    assert peer_pickle.loads(pickle.dumps(message)) == message
    with pytest.raises(peer_pickle.ForbiddenPeerMessage, match=r"(posix|os)\.system"):
        peer_pickle.loads(pickle.dumps(RunsCode()))


class RunsCode:
    def __reduce__(self) -> tuple:
        return (os.system, ("true",))


def test_inflation_is_bounded_by_the_frame_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 100_000
    monkeypatch.setattr(frame_limit, "max_bytes", limit)
    assert wire.decompress(zlib.compress(b"a" * limit)) == b"a" * limit
    with pytest.raises(ValueError, match="inflates beyond"):
        wire.decompress(zlib.compress(b"a" * (limit + 1)))
    with pytest.raises(ValueError):
        wire.decompress(zlib.compress(b"abc" * 1000)[:-10])


def test_a_frame_length_is_judged_from_its_first_four_bytes() -> None:
    assert frame_length_refused(b"\x10\x00", 100) is None  # not complete yet
    assert frame_length_refused(struct.pack("i", 100) + b"x", 100) is None
    assert "101 bytes" in (frame_length_refused(struct.pack("i", 101), 100) or "")
    assert frame_length_refused(struct.pack("i", -1), 100)
