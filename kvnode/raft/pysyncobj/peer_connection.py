"""Limits on peer connections, so that no connection can stall a node.

PySyncObj's `TcpConnection` trusts the 4-byte length prefix of every frame: a
peer that announces 2^31-1 bytes and streams slowly makes it accumulate the
frame with `bytes +=` (a copy of the whole buffer per 8 KiB read, quadratic),
in the tick thread, and the node stops heartbeating while it still believes it
leads. It also drops frames that fail to authenticate without a word.

The policy here, applied by `BoundedTcpConnection` (adapter.py):

- a cap on the announced frame length, checked as soon as the 4 bytes arrive,
  before any byte of the frame is kept (the largest legitimate frame is one
  log entry with the largest value, plus headroom);
- a buffer that grows in place (bytearray), so reading is linear;
- a deadline on an accepted connection (the handshake): one that has not
  authenticated and named its member within `HANDSHAKE_SECONDS` is dropped,
  whether it trickles bytes (which would keep PySyncObj's idle timeout at bay),
  sent half a frame or sends nothing at all (the transport looks every tick);
- at most `MAX_UNAUTHENTICATED` accepted connections waiting for their handshake:
  beyond it a new one is closed at once, so silent connections cannot use up
  the descriptors the journal needs;
- a rate-limited log line whenever a frame fails to authenticate or decode, a
  frame is too long, or a peer hangs up before authenticating.
"""

from __future__ import annotations

import logging
import struct

from kvnode.log_limit import LogLimiter

log = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct("i")  # PySyncObj's length prefix (native int)
HANDSHAKE_SECONDS = 5.0
MAX_UNAUTHENTICATED = 64  # a cluster has at most 9 members; each connects a few times
FRAME_HEADROOM_BYTES = 1024 * 1024

peer_warnings = LogLimiter(log)


def max_frame_bytes_for(max_value_bytes: int) -> int:
    """The largest frame a correct peer sends: a forwarded command or one log entry carrying
    the largest value (pickled, maybe deflated, sealed), twice over for safety."""
    return 2 * max_value_bytes + FRAME_HEADROOM_BYTES


class FrameLimit:
    """The one frame limit of this process: no frame is buffered, and no message inflated,
    beyond it. `configure` sets it from the node's max_value_bytes at start."""

    def __init__(self) -> None:
        self.max_bytes = max_frame_bytes_for(1024 * 1024)

    def configure(self, max_value_bytes: int) -> None:
        self.max_bytes = max_frame_bytes_for(max_value_bytes)


frame_limit = FrameLimit()


def frame_length_refused(buffer: bytes | bytearray, max_frame_bytes: int) -> str | None:
    """Why the frame starting `buffer` must be refused, or None (also while incomplete)."""
    if len(buffer) < FRAME_HEADER.size:
        return None
    (length,) = FRAME_HEADER.unpack_from(buffer)
    if 0 <= length <= max_frame_bytes:
        return None
    return f"it announced a frame of {length} bytes (the limit is {max_frame_bytes})"
