"""The one place kvnode touches PySyncObj: its imports, its private names, and every patch.

Checked against pysyncobj 0.3.17 (`PINNED_VERSION`, also pinned in pyproject.toml);
`check_version()` refuses to start a node on any other version, because the names
below are PySyncObj's internals and may change meaning between releases.

Patches, installed by `install()` when a node starts (never at import):

- `syncobj.createJournal`: hands kvnode's `DurableJournal` over unchanged.
- `syncobj.getEncryptor`: `PeerCipher` (AES-GCM) instead of Fernet.
- `tcp_connection.zlib`: small messages sent stored, inflation bounded (wire.py).
- `tcp_connection.pickle`: a plain-data unpickler, never code (peer_pickle.py).
- `syncobj.pickle`: the same for log entries. PySyncObj unpickles every entry's command
  when it applies it, membership entries when they arrive, and a large entry sent in
  pieces; all of that came from a peer. kvnode's entries are plain data, and its
  membership entries are `[change, address]` (PySyncObj's own pickle a node object).
- `tcp_server.TcpConnection`, `transport.TcpConnection`: `BoundedTcpConnection`.

Private names read or written (name-mangled state of PySyncObj's classes):

- `SyncObj`: `__commandsLocalCounter`, `__newAppendEntriesTime`, `__sendAppendEntries`,
  `__raftState`, `__otherNodes`, `__raftElectionDeadline`, `__connectedToAnyone`,
  `__generateRaftTimeout`, `__raftLeader`, `__onLeaderChanged`, `__transport`,
  `__raftNextIndex`, `__serializer`, `__otherNodes`, `__connectedNodes`,
  `__lastResponseTime`, `__raftMatchIndex`, `__recvTransmission`; and `_applyCommand`
  with `_COMMAND_TYPE`.
- `TCPTransport._onNodeDisconnected` (overridden in raft/pysyncobj/transport.py), and
  `TCPTransport._unknownConnections` (accepted connections not yet identified, swept
  there for the handshake deadline and capped).
- `Serializer`: `__useFork` (PySyncObj forks only for its own pickle serializer) and
  `__pid` (its child, stopped with the node).
- `TcpConnection`: `__processRead`, `__processParseMessage`, `__readBuffer`.

Protected hooks overridden by subclasses elsewhere: `SyncObj._onTick`,
`SyncObj._checkCommandsToApply` and `SyncObj._doDestroy` (raft/pysyncobj/node.py),
`TCPTransport._onMessageReceived`, `_createServer`, `_onNewIncomingConnection` and
`_onTick` (raft/pysyncobj/transport.py).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any, cast

import pysyncobj.syncobj as syncobj_module
import pysyncobj.tcp_connection as tcp_connection_module
import pysyncobj.tcp_server as tcp_server_module
import pysyncobj.transport as transport_module
from kvnode.config import ConfigError
from kvnode.raft.pysyncobj import peer_pickle, wire
from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.raft.pysyncobj.peer_cipher import PeerCipher
from kvnode.raft.pysyncobj.peer_connection import (
    HANDSHAKE_SECONDS,
    frame_length_refused,
    frame_limit,
    peer_warnings,
)
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.config import FAIL_REASON
from pysyncobj.node import TCPNode
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import _COMMAND_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE, TcpConnection
from pysyncobj.transport import TCPTransport
from pysyncobj.version import VERSION

PINNED_VERSION = "0.3.17"
POLL_READ = POLL_EVENT_TYPE.READ
# FAIL_REASON codes that mean the command was certainly not applied.
DEFINITE_FAILURES = {
    FAIL_REASON.QUEUE_FULL: "queue_full",
    FAIL_REASON.MISSING_LEADER: "no_leader",
    FAIL_REASON.DISCARDED: "discarded",
    FAIL_REASON.NOT_LEADER: "not_leader",
    FAIL_REASON.REQUEST_DENIED: "denied",
}
SUCCESS = FAIL_REASON.SUCCESS
MEMBERSHIP_ENTRY = _COMMAND_TYPE.MEMBERSHIP  # the first byte of a membership log entry
MEMBERSHIP_CHANGES = ("add", "rem")

__all__ = [
    "DEFINITE_FAILURES",
    "POLL_READ",
    "SUCCESS",
    "SyncObjConf",
]


class UnsupportedPySyncObj(ConfigError):
    """The installed pysyncobj is not the version these internals were checked against
    (a ConfigError: `kvnode serve` reports it in one line and exits 2)."""


def check_version() -> None:
    if VERSION != PINNED_VERSION:
        raise UnsupportedPySyncObj(
            f"pysyncobj {VERSION} is installed, but kvnode relies on the internals of"
            f" {PINNED_VERSION}; install pysyncobj=={PINNED_VERSION}"
        )


_original_create_journal = syncobj_module.createJournal


def _create_journal(journal_file: Any) -> Any:
    """PySyncObj builds its journal from `conf.journalFile`; kvnode passes a ready
    DurableJournal object there and this hook hands it over unchanged."""
    if isinstance(journal_file, DurableJournal):
        return journal_file
    return _original_create_journal(journal_file)


def install(max_value_bytes: int) -> None:
    """Every patch listed above (idempotent). Run before the first SyncObj is built."""
    check_version()
    syncobj_module.createJournal = _create_journal
    syncobj_module.getEncryptor = PeerCipher.from_secret
    frame_limit.configure(max_value_bytes)
    tcp_connection_module.zlib = wire.PeerZlib
    tcp_connection_module.pickle = peer_pickle
    syncobj_module.pickle = peer_pickle
    tcp_server_module.TcpConnection = BoundedTcpConnection
    transport_module.TcpConnection = BoundedTcpConnection


# PySyncObj's @replicated, given a type: a call is proposed (it takes `callback=`) and the
# method runs on every node once the entry commits. The very same function: it injects
# `<name>_v0` into the calling class body through sys._getframe, so it cannot be wrapped.
replicated_method = cast(Callable[[Callable[..., Any]], Callable[..., Any]], replicated)


def node_address(node: Any) -> str:
    return str(node.address)


def make_node(address: str) -> Any:
    return TCPNode(address)


class SyncObjBase(SyncObj):  # type: ignore[misc]
    """SyncObj with named accessors for the private state kvnode reads and steers."""

    def start_forwarded_ids_at(self, value: int) -> None:
        """PySyncObj numbers forwarded commands from 0 in every process."""
        self._SyncObj__commandsLocalCounter = value

    def send_append_entries(self) -> None:
        self._SyncObj__sendAppendEntries()

    def send_append_entries_next_tick(self) -> None:
        self._SyncObj__newAppendEntriesTime = 0

    def raft_state(self) -> int:
        return int(self._SyncObj__raftState)

    def peers(self) -> list[Any]:
        return list(self._SyncObj__otherNodes)

    def has_peers(self) -> bool:
        return bool(self._SyncObj__otherNodes)

    def transport(self) -> Any:
        return self._SyncObj__transport

    def election_due(self, now: float) -> bool:
        return bool(
            self._SyncObj__raftElectionDeadline < now and self._SyncObj__connectedToAnyone()
        )

    def postpone_election(self, now: float) -> None:
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()

    def forget_leader(self) -> None:
        if self._SyncObj__raftLeader is not None:  # type: ignore[has-type]
            self._SyncObj__raftLeader = None
            self._SyncObj__onLeaderChanged()

    def make_election_due(self) -> None:
        self._SyncObj__raftElectionDeadline = 0

    def adopt_term(self, term: int) -> None:
        """What PySyncObj does on a vote request for a higher term, short of voting: take
        the term (no vote cast in it) and follow no one."""
        self._SyncObj__setCurrentTerm(term, None)
        self._SyncObj__setState(syncobj_module._RAFT_STATE.FOLLOWER)
        self.forget_leader()

    def send(self, peer: Any, message: dict[str, Any]) -> None:
        self._SyncObj__transport.send(peer, message)

    def serialize_in_child(self) -> None:
        """Write Raft snapshots in a forked child, as PySyncObj does for its own format
        (it turns forking off when the serializer is a custom one): the tick thread
        then only forks, and heartbeats go on while a large state is written."""
        self._SyncObj__serializer._Serializer__useFork = True

    def end_snapshot_child(self) -> None:
        """Stop a snapshot child still writing when the node stops. PySyncObj never waits
        for it: left alone, it would rename its file into place after the node is gone,
        perhaps while a restarted node writes the same temporary file. A stopping node
        needs no snapshot; the next one starts from what is on disk."""
        serializer = self._SyncObj__serializer
        pid = serializer._Serializer__pid
        if pid <= 0:  # 0: none; -1/-2: an in-process result PySyncObj has not read yet
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        serializer._Serializer__pid = 0

    def take_transmission(self, last_piece: bytes) -> bytes:
        """A large entry sent in pieces: what arrived before `last_piece`, plus it, taken
        out of PySyncObj's buffer (the caller then hands the entry over whole)."""
        received = self._SyncObj__recvTransmission  # type: ignore[has-type]
        self._SyncObj__recvTransmission = ""
        return bytes(received or b"") + last_piece

    def propose_membership(self, change: str, address: str, callback: Any) -> None:
        """Add ("add") or remove ("rem") one voter: PySyncObj's single-server change, in
        effect on every node as soon as the entry is in its log. Encoded as plain data."""
        assert change in MEMBERSHIP_CHANGES
        self._applyCommand(peer_pickle.dumps([change, address]), callback, MEMBERSHIP_ENTRY)

    def voter_addresses(self) -> list[str]:
        """The Raft addresses of the other voters, as this node's log has them now. (Any
        thread: `list()` copies PySyncObj's set in one step, before the tick changes it.)"""
        return sorted(node_address(node) for node in list(self._SyncObj__otherNodes))

    def voters_version(self) -> tuple[int, int]:
        """Changes whenever the voters do (PySyncObj adds or discards nodes in place, and
        replaces the set when it loads a snapshot), without building anything: it is
        compared on every tick. Tick thread only (the one that changes the set)."""
        voters = self._SyncObj__otherNodes
        return id(voters), sum(map(hash, voters))

    def connected_addresses(self) -> set[str]:
        return {node_address(node) for node in list(self._SyncObj__connectedNodes)}

    def responded_within(self, seconds: float) -> set[str]:
        """On the leader: the followers that answered it in the last `seconds`."""
        deadline = time.monotonic() - seconds
        last = self._SyncObj__lastResponseTime
        voters = list(self._SyncObj__otherNodes)
        return {node_address(n) for n in voters if last.get(n, 0) > deadline}

    def match_indexes(self) -> dict[str, int]:
        """On the leader: the highest index known to be stored on each follower."""
        return {node_address(n): i for n, i in list(self._SyncObj__raftMatchIndex.items())}

    def hand_over_leadership(self, callback: Any) -> None:
        """Ask the most caught-up connected follower to stand now (Raft's TimeoutNow)."""
        self.transferLeadership(None, callback)

    def match_index_map(self) -> dict[Any, int]:
        """The leader's matchIndex per follower (a live dict)."""
        match_index: dict[Any, int] = self._SyncObj__raftMatchIndex
        return match_index

    def forget_match_index(self, node: Any) -> None:
        """What a disconnected follower holds is known again only from its next reply."""
        match_index = self._SyncObj__raftMatchIndex
        if node in match_index:
            match_index[node] = 0

    def next_index_map(self) -> dict[Any, int]:
        """The leader's nextIndex per follower (a live dict)."""
        next_index: dict[Any, int] = self._SyncObj__raftNextIndex
        return next_index


class TransportBase(TCPTransport):  # type: ignore[misc]
    """TCPTransport with a typed handle on the node that owns it."""

    @property
    def node(self) -> Any:
        return self._syncObj

    def mark_ready_without_server(self) -> None:
        self._ready = True  # PySyncObj waits for this flag before ticking


UNANSWERED: collections.Counter[str] = collections.Counter()  # peer -> hang-ups in a row
UNANSWERED_BEFORE_WARNING = 3


class BoundedTcpConnection(TcpConnection):  # type: ignore[misc]
    """PySyncObj's peer connection with the limits of peer_connection.py: a cap on frame
    length checked before any byte of the frame is kept, a buffer that grows in place, a
    handshake deadline on accepted connections, and rate-limited log lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opened_at = time.monotonic()
        self._frames_received = 0
        self._peer = "?"
        # What rate-limits this connection's warnings: an outgoing one's peer; for an
        # accepted one its host alone, since each reconnect comes from another port.
        self._warn_key = "?"
        sock = kwargs.get("socket")
        # Incoming connections (accepted by the server) must authenticate quickly; outgoing
        # ones speak first and may wait for an idle peer's first message.
        self._handshake_deadline = sock is not None
        if sock is not None:
            try:
                host, port = sock.getpeername()[:2]
                self._peer, self._warn_key = f"{host}:{port}", f"{host} (incoming)"
            except OSError:
                pass

    def connect(self, host: str, port: int) -> bool:
        self._opened_at = time.monotonic()
        self._frames_received = 0
        self._peer = self._warn_key = f"{host}:{port}"
        return bool(super().connect(host, port))

    def disconnect(self) -> None:
        if (
            not self._handshake_deadline  # an outgoing connection: this node spoke first
            and self.encryptor is not None
            and self.state == CONNECTION_STATE.CONNECTED
            and not self._frames_received
        ):
            # A peer stopping, killed or just resumed hangs up like this once; one with
            # another secret does so at every attempt: only that is worth a warning.
            UNANSWERED[self._peer] += 1
            if UNANSWERED[self._peer] >= UNANSWERED_BEFORE_WARNING:
                self._warn(
                    "closed", "it hung up before authenticating (a different cluster_secret?)"
                )
        super().disconnect()

    def _warn(self, reason: str, detail: str) -> None:
        peer_warnings.warning(
            f"{reason} {self._warn_key}", "peer connection %s dropped: %s", self._peer, detail
        )

    def _TcpConnection__processRead(self) -> bool:
        buffer = self._TcpConnection__readBuffer  # type: ignore[has-type]
        if not isinstance(buffer, bytearray):
            self._TcpConnection__readBuffer = bytearray(buffer)
        more = bool(super()._TcpConnection__processRead())
        if self.state == CONNECTION_STATE.DISCONNECTED:
            return False
        refused = frame_length_refused(self._TcpConnection__readBuffer, frame_limit.max_bytes)
        if refused:
            self._warn("frame", refused)
            self.disconnect()
            return False
        if not self._frames_received and self.handshake_overdue(time.monotonic()):
            self.refuse(f"not authenticated as a member within {HANDSHAKE_SECONDS:g} s")
            return False
        return more

    def handshake_overdue(self, now: float) -> bool:
        """An accepted connection that had HANDSHAKE_SECONDS to authenticate."""
        return self._handshake_deadline and now - self._opened_at > HANDSHAKE_SECONDS

    def refuse(self, why: str) -> None:
        """Close an accepted connection that may not stay, saying why (rate-limited)."""
        self._warn("handshake", why)
        self.disconnect()

    def _TcpConnection__processParseMessage(self) -> Any:
        message = super()._TcpConnection__processParseMessage()
        if message is not None:
            self._frames_received += 1
            UNANSWERED.pop(self._peer, None)
        elif self.state == CONNECTION_STATE.DISCONNECTED:
            self._warn(
                "auth", "a message failed to authenticate or decode (a different cluster_secret?)"
            )
        return message
