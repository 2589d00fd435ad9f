"""Accepted peer connections that have not authenticated are capped: beyond
MAX_UNAUTHENTICATED, a new one is closed at once, so silent connections cannot use up the
descriptors the journal needs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pysyncobj.node import TCPNode
from pysyncobj.transport import TCPTransport

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


class FakeSyncObj:
    encryptor = None


def bare_transport() -> SyncedTransport:
    transport = SyncedTransport.__new__(SyncedTransport)
    transport._syncObj = FakeSyncObj()
    transport._onUtilityMessageCallbacks = {"status": None}
    transport._selfNode = TCPNode("127.0.0.1:5000")
    transport._selfIsReadonlyNode = False
    transport._preventConnectNodes = set()
    transport._nodeAddrToNode = {}
    return transport


def refusal(transport: SyncedTransport, message: object) -> str | None:
    conn = Accepted()
    transport._unknownConnections = {conn}
    transport._onIncomingMessageReceived(conn, message)
    assert (conn.refused is None) == (conn in transport._unknownConnections)
    return conn.refused


def test_a_first_message_that_names_no_peer_closes_the_connection() -> None:
    """Not a traceback on the tick thread: PySyncObj would look a dict up as an address."""
    transport = bare_transport()
    for message in ({"type": "request_vote"}, [], [{}], ["no-such-command"], 7, b"addr"):
        assert refusal(transport, message) == "its first message names no peer", message


def test_a_claim_to_be_a_member_this_node_dials_or_a_read_only_one_is_refused() -> None:
    """Taking either would let one stranger's connection cut this node off from a member
    (its own connection object replaced) or vote without being a member."""
    transport = bare_transport()
    lower = "127.0.0.1:4000"  # this node (5000) connects to it
    transport._nodeAddrToNode = {lower: TCPNode(lower)}
    assert "a member this node connects to itself" in (refusal(transport, lower) or "")
    assert "read-only" in (refusal(transport, "readonly") or "")


class Connected:
    def __init__(self, send_rand_key: bytes | None) -> None:
        self.sendRandKey = send_rand_key


def test_nothing_is_sent_on_a_connection_before_its_key_exchange_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message sent before the peer's nonce arrived would go out without it, and the
    peer would hang up as on a wrong secret: it waits (dropped; Raft sends again)."""
    sent: list[str] = []

    def recording_send(_self: object, node: str, _message: object) -> bool:
        sent.append(node)
        return True

    monkeypatch.setattr(TCPTransport, "send", recording_send)
    transport = SyncedTransport.__new__(SyncedTransport)
    transport._syncObj = SimpleNamespace(encryptor=object())
    transport._connections = {"early": Connected(None), "ready": Connected(b"nonce")}
    assert transport._send_now("early", {"type": "append_entries"}) is False
    assert transport._send_now("ready", {"type": "append_entries"}) is True
    assert sent == ["ready"]
