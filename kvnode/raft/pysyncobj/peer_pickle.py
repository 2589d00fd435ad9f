"""Decoding peer messages without ever running code from the wire.

PySyncObj encodes every peer message with pickle, and `pickle.loads` will
import and call any function a message names: whoever can send bytes to the
Raft port can run code on the node. The cluster secret stops that only when it
is set. Here the loads PySyncObj's TCP connection calls is replaced by one that
refuses every global reference (Raft messages are plain dicts, lists, tuples,
strings, numbers and bytes) and every message larger than the frame cap, so
no configuration, secret or not, unpickles anything that can execute.
"""

from __future__ import annotations

import io
import pickle
from typing import Any


class ForbiddenPeerMessage(pickle.UnpicklingError):
    """A peer message named a class or function; it is dropped with its connection."""


class PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise ForbiddenPeerMessage(f"a peer message refers to {module}.{name}; refused")


def loads(data: bytes) -> Any:
    return PlainDataUnpickler(io.BytesIO(data)).load()


dumps = pickle.dumps
