"""Speaking PySyncObj's peer protocol from a test, as a peer without a secret would
(`--insecure` nodes): a frame is a 4-byte length, then zlib(pickle(message)); the first
frame a connection sends is the address of the peer it claims to be."""

from __future__ import annotations

import pickle
import socket
import struct
import zlib
from typing import Any

FRAME = struct.Struct("i")


def frame(message: Any) -> bytes:
    body = zlib.compress(pickle.dumps(message))
    return FRAME.pack(len(body)) + body


def read_frame(sock: socket.socket) -> Any:
    head = receive(sock, FRAME.size)
    (length,) = FRAME.unpack(head)
    return pickle.loads(zlib.decompress(receive(sock, length)))


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def connect_as(raft_addr: str, claimed_peer: str) -> socket.socket:
    """A connection to `raft_addr` that says it comes from `claimed_peer`."""
    host, port = raft_addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(frame(claimed_peer))
    return sock
