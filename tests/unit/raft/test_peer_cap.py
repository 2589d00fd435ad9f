"""Accepted peer connections that have not authenticated are capped: beyond
MAX_UNAUTHENTICATED, a new one is closed at once, so silent connections cannot use up the
descriptors the journal needs."""

from __future__ import annotations

from kvnode.raft.pysyncobj.peer_connection import MAX_UNAUTHENTICATED
from kvnode.raft.pysyncobj.transport import SyncedTransport


class Accepted:
    def __init__(self) -> None:
        self.refused: str | None = None

    def refuse(self, why: str) -> None:
        self.refused = why


def test_a_connection_beyond_the_cap_is_refused_at_once() -> None:
    transport = SyncedTransport.__new__(SyncedTransport)  # only its connection bookkeeping
    transport._unknownConnections = {Accepted() for _ in range(MAX_UNAUTHENTICATED)}
    beyond = Accepted()
    transport._onNewIncomingConnection(beyond)
    assert beyond.refused is not None and "already authenticating" in beyond.refused
    assert beyond not in transport._unknownConnections
