"""PySyncObj's peer connection with limits, so that no connection can stall a node.

PySyncObj's `TcpConnection` trusts the 4-byte length prefix of every frame: a
peer that announces 2^31-1 bytes and streams slowly makes it accumulate the
frame with `bytes +=` (a copy of the whole buffer per 8 KiB read, quadratic),
in the tick thread, and the node stops heartbeating while it still believes it
leads. It also drops frames that fail to authenticate without a word.

`BoundedTcpConnection` keeps the wire format and adds:

- a cap on the announced frame length, checked as soon as the 4 bytes arrive,
  before any byte of the frame is kept (the largest legitimate frame is one
  log entry with the largest value, plus headroom);
- a buffer that grows in place (bytearray), so reading is linear;
- a deadline for the first complete frame on an accepted connection (the
  handshake): one that has not authenticated within `HANDSHAKE_SECONDS` is
  dropped even if it trickles bytes, which would otherwise keep PySyncObj's
  idle timeout at bay;
- a rate-limited log line whenever a frame fails to authenticate or decode,
  or a frame is too long.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection

from kvnode.log_limit import LogLimiter

log = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct("i")  # PySyncObj's length prefix (native int)
HANDSHAKE_SECONDS = 5.0
FRAME_HEADROOM_BYTES = 1024 * 1024


peer_warnings = LogLimiter(log)


def max_frame_bytes_for(max_value_bytes: int) -> int:
    """The largest frame a correct peer sends: a forwarded command or one log entry carrying
    the largest value (pickled, maybe deflated, sealed), twice over for safety."""
    return 2 * max_value_bytes + FRAME_HEADROOM_BYTES


class BoundedTcpConnection(TcpConnection):
    max_frame_bytes = max_frame_bytes_for(1024 * 1024)  # set per node by `configure`

    @classmethod
    def configure(cls, max_value_bytes: int) -> None:
        cls.max_frame_bytes = max_frame_bytes_for(max_value_bytes)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opened_at = time.monotonic()
        self._frames_received = 0
        self._peer = "?"
        sock = kwargs.get("socket")
        # Incoming connections (accepted by the server) must authenticate quickly; outgoing
        # ones speak first and may wait for an idle peer's first message.
        self._handshake_deadline = sock is not None
        if sock is not None:
            try:
                host, port = sock.getpeername()[:2]
                self._peer = f"{host}:{port}"
            except OSError:
                pass

    def connect(self, host: str, port: int) -> bool:
        self._opened_at = time.monotonic()
        self._frames_received = 0
        self._peer = f"{host}:{port}"
        return bool(super().connect(host, port))

    def disconnect(self) -> None:
        if (
            not self._handshake_deadline  # an outgoing connection: this node spoke first
            and self.encryptor is not None
            and self.state == CONNECTION_STATE.CONNECTED
            and not self._frames_received
        ):
            self._warn("closed", "it hung up before authenticating (a different cluster_secret?)")
        super().disconnect()

    def _warn(self, reason: str, detail: str) -> None:
        peer_warnings.warning(
            f"{reason} {self._peer}", "peer connection %s dropped: %s", self._peer, detail
        )

    def _TcpConnection__processRead(self) -> bool:
        buffer = self._TcpConnection__readBuffer  # type: ignore[has-type]
        if not isinstance(buffer, bytearray):
            self._TcpConnection__readBuffer = bytearray(buffer)
        more = bool(super()._TcpConnection__processRead())  # type: ignore[misc]
        if self.state == CONNECTION_STATE.DISCONNECTED:
            return False
        buffer = self._TcpConnection__readBuffer
        if len(buffer) >= FRAME_HEADER.size:
            (length,) = FRAME_HEADER.unpack_from(buffer)
            if not 0 <= length <= self.max_frame_bytes:
                self._warn(
                    "frame",
                    f"it announced a frame of {length} bytes (the limit is {self.max_frame_bytes})",
                )
                self.disconnect()
                return False
        if (
            self._handshake_deadline
            and not self._frames_received
            and time.monotonic() - self._opened_at > HANDSHAKE_SECONDS
        ):
            self._warn("handshake", f"no authenticated message within {HANDSHAKE_SECONDS} s")
            self.disconnect()
            return False
        return more

    def _TcpConnection__processParseMessage(self) -> Any:
        message = super()._TcpConnection__processParseMessage()  # type: ignore[misc]
        if message is not None:
            self._frames_received += 1
        elif self.state == CONNECTION_STATE.DISCONNECTED:
            self._warn(
                "auth", "a message failed to authenticate or decode (a different cluster_secret?)"
            )
        return message
