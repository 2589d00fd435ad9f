"""The adapter: every patch in place after `install()`, nothing before, a wrong pysyncobj
version refused, the transport's nextIndex fix, and the snapshot child ended with the node."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pysyncobj.syncobj as syncobj_module
import pysyncobj.tcp_connection as tcp_connection_module
import pysyncobj.tcp_server as tcp_server_module
import pysyncobj.transport as transport_module
import pytest

from kvnode.raft.outbox import Outbox
from kvnode.raft.prevote import PreVote
from kvnode.raft.pysyncobj import adapter as pysyncobj_adapter
from kvnode.raft.pysyncobj import peer_pickle, wire
from kvnode.raft.pysyncobj.adapter import (
    BoundedTcpConnection,
    SyncObjBase,
    UnsupportedPySyncObj,
)
from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.raft.pysyncobj.peer_cipher import PeerCipher
from kvnode.raft.pysyncobj.peer_connection import frame_limit, max_frame_bytes_for
from kvnode.raft.pysyncobj.snapshot_gate import SnapshotGate
from kvnode.raft.pysyncobj.transport import SyncedTransport


def test_install_puts_every_patch_where_pysyncobj_looks(tmp_path: Path) -> None:
    pysyncobj_adapter.install(max_value_bytes=1024)
    journal = DurableJournal(tmp_path, durable=False, dump_file=tmp_path / "dump")
    assert syncobj_module.createJournal(journal) is journal
    assert syncobj_module.getEncryptor == PeerCipher.from_secret
    assert tcp_connection_module.zlib.compress is wire.compress
    assert tcp_connection_module.zlib.decompress is wire.decompress
    assert tcp_connection_module.pickle is peer_pickle
    assert tcp_server_module.TcpConnection is BoundedTcpConnection
    assert transport_module.TcpConnection is BoundedTcpConnection
    assert frame_limit.max_bytes == max_frame_bytes_for(1024)


def test_another_pysyncobj_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pysyncobj_adapter, "VERSION", "0.3.18")
    with pytest.raises(UnsupportedPySyncObj, match=r"pysyncobj==0\.3\.17"):
        pysyncobj_adapter.install(max_value_bytes=1024)


class FakeNode:
    """The node a transport serves, as far as `_onMessageReceived` looks at it."""

    raftCurrentTerm = 3
    machine = SimpleNamespace(cluster_id="")

    def __init__(self) -> None:
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.prevote = PreVote(None, 0.4)  # type: ignore[arg-type]  (not consulted here)

    def next_index_map(self) -> dict[str, int]:
        return self.next_index

    def match_index_map(self) -> dict[str, int]:
        return self.match_index

    def is_leader(self) -> bool:
        return True

    def follower_reported(self, node: str) -> int:
        return self.match_index.get(node, 0)

    def note_follower_match(self, node: str) -> None:
        pass  # the leader's own sync is not part of these tests (test_journal_sync.py)

    def forget_follower(self, node: str) -> None:
        self.match_index[node] = 0


def transport_for(node: FakeNode) -> Any:
    """A SyncedTransport without sockets; its PySyncObj callback does what SyncObj does
    with a next_node_idx reply: it sets nextIndex to what the reply says."""
    transport: Any = object.__new__(SyncedTransport)
    transport._syncObj = node
    transport._gate = SnapshotGate()
    transport._outbox = Outbox()
    transport._unanswered_since, transport.ack_timings = {}, {}

    def pysyncobj_handler(peer: str, message: dict[str, Any]) -> None:
        if message["success"] or message["reset"]:
            node.next_index[peer] = message["next_node_idx"]

    transport._onMessageReceivedCallback = pysyncobj_handler
    return transport


def reply(next_index: int, *, success: bool, reset: bool = False) -> dict[str, Any]:
    return {
        "type": "next_node_idx",
        "next_node_idx": next_index,
        "success": success,
        "reset": reset,
    }


def test_a_success_reply_never_moves_next_index_back() -> None:
    node = FakeNode()
    node.next_index["b"] = 10  # entries up to 9 already sent (pipelined)
    transport = transport_for(node)
    transport._onMessageReceived("b", reply(7, success=True))  # an older acknowledgement
    assert node.next_index["b"] == 10
    transport._onMessageReceived("b", reply(12, success=True))
    assert node.next_index["b"] == 12
    transport._onMessageReceived("b", reply(5, success=False, reset=True))  # a real conflict
    assert node.next_index["b"] == 5


def test_a_reset_never_moves_next_index_to_what_the_follower_acknowledged() -> None:
    """Seen when a joining node installed a snapshot at 180 and took entries up to 193 at
    once: its reset "send from 181", overtaken by its acknowledgement of 193, made the
    leader resend 181 on, and the follower cut entries it had applied (CRITICAL log)."""
    node = FakeNode()
    node.next_index["b"], node.match_index["b"] = 194, 193
    transport = transport_for(node)
    transport._onMessageReceived("b", reply(181, success=False, reset=True))
    assert node.next_index["b"] == 194
    transport._onNodeDisconnectedCallback = None
    transport._onNodeDisconnected("b")  # a restarted (maybe wiped) follower starts over
    transport._onMessageReceived("b", reply(1, success=False, reset=True))
    assert node.next_index["b"] == 1


def test_replicated_methods_are_registered_in_their_class() -> None:
    """@replicated registers `<name>_v0` in the class body through its caller's frame; a
    wrapper around it would register it nowhere, and every proposal would fail."""
    from kvnode.raft.pysyncobj.node import RaftNode

    assert "apply_command_v0" in vars(RaftNode)


def test_a_stale_snapshot_never_reaches_pysyncobj_and_the_leader_hears_where_we_are(
    tmp_path: Path,
) -> None:
    """The sequence seen in a partition test: a follower that has committed up to 5460 is
    streamed a snapshot taken at 4999. PySyncObj would install it and wind its commit
    index back ("raftCommitIndex (5460) exceeds journal end (4999) ... clamping"); the
    transport drops it whole and asks the leader for the entries after 5460."""
    from kvnode.storage.fileformat import KIND_SNAPSHOT
    from kvnode.storage.image import encode_image
    from kvnode.storage.keyspace import Keyspace

    node = FakeNode()
    node.raftCommitIndex = 5460  # type: ignore[attr-defined]
    transport = transport_for(node)
    seen: list[dict[str, Any]] = []
    transport._onMessageReceivedCallback = lambda _peer, message: seen.append(message)
    sent: list[tuple[str, dict[str, Any]]] = []
    transport.send = lambda peer, message: sent.append((peer, message))
    data, _crc = encode_image(KIND_SNAPSHOT, 4999, 3, Keyspace(), b"raft")
    chunks = [(data[:60], True, False), (data[60:], False, True)]
    for chunk in chunks:
        transport._onMessageReceived("leader", {"type": "append_entries", "serialized": chunk})
    assert seen == [], "PySyncObj must not see any chunk of the stale snapshot"
    assert sent == [
        (
            "leader",
            {"type": "next_node_idx", "next_node_idx": 5461, "reset": True, "success": False},
        )
    ]
    newer, _crc = encode_image(KIND_SNAPSHOT, 6000, 3, Keyspace(), b"raft")
    transport._onMessageReceived(
        "leader", {"type": "append_entries", "serialized": (newer, True, True)}
    )
    assert len(seen) == 1, "a newer snapshot is installed as before"


def test_a_stopping_node_ends_its_snapshot_child() -> None:
    """Left alone, PySyncObj's snapshot child outlived a stopped node (seen in the stall
    benchmark: it renamed its file into a directory being deleted)."""
    pid = os.fork()
    if pid == 0:  # the "snapshot writer": still writing until it is ended
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        while True:
            signal.pause()
    node: Any = SimpleNamespace(_SyncObj__serializer=SimpleNamespace(_Serializer__pid=pid))
    SyncObjBase.end_snapshot_child(node)
    assert node._SyncObj__serializer._Serializer__pid == 0
    with pytest.raises(ChildProcessError):  # ended and reaped
        os.waitpid(pid, os.WNOHANG)
    SyncObjBase.end_snapshot_child(node)  # none running: nothing to do
