"""The peer transport: a persistence barrier on sends, a fix to the leader's nextIndex, a
gate against stale snapshots, and no peer port for a lone node without a secret.

Every Raft message PySyncObj sends goes through `send`. A message other than
the leader's own append-entries (a follower's acknowledgement, a vote) leaves
only once the journal changes made before it are on disk: that is Raft's
"persist before you reply" in one place. The fsync runs in the journal's own
thread (journal_sync.py), so such a message is held in an `Outbox` with the
journal generation it depends on, and released by the tick that follows the
sync; all entries appended meanwhile share that fsync. The leader's
append-entries go out at once, before its own fsync, so its disk write overlaps
the network round trip and the followers' fsyncs (Raft allows this); the leader
counts its own copy towards a commit only once it is synced (leader_match.py).

PySyncObj's leader sets a follower's nextIndex to whatever a success reply
says, even when it has already sent further (pipelining): an older reply moves
nextIndex *back*, the same entries go out again, and the follower, which
truncates everything after prevLogIdx whenever it has more, cuts and re-appends
entries it had acknowledged (the "truncating already-applied log entries"
CRITICAL log). For that moment a committed entry may have one copy fewer than
its majority. A success reply can only ever move nextIndex forward, so that is
what `_onMessageReceived` enforces. A failure reply (reset) still moves it back,
but never to or below what the follower acknowledged: a reset that old was overtaken
by the follower's own later acknowledgements (seen when a joining node installs
a snapshot and takes entries at once). A follower holds what it acknowledged in
this term for as long as its connection lasts, so what it acknowledged is forgotten
when the connection drops (a restarted or wiped node starts over).

On the follower's side, an append-entries message is first reduced to what Raft
§5.3 lets it change (follower_append.py): entries already held are skipped, the
log is cut only from a conflicting entry, and the reply acknowledges only what the
message covered. A conflict at or below the commit index fail-stops the node.
Each reply names the term it answers, and the leader drops a reply of another term
(leader_match.answers_another_term): PySyncObj's leader would count one from an
earlier leadership of its own.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kvnode.log_limit import LogLimiter
from kvnode.raft import read_index
from kvnode.raft.failstop import fail_stop
from kvnode.raft.follower_append import AppendPlan, Entry, plan_append
from kvnode.raft.journal_sync import JournalSyncer
from kvnode.raft.leader_match import answers_another_term
from kvnode.raft.outbox import Outbox
from kvnode.raft.prevote import PRE_VOTE, PRE_VOTE_REPLY, TERM_AHEAD
from kvnode.raft.pysyncobj import peer_pickle
from kvnode.raft.pysyncobj.adapter import TransportBase, node_address
from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.raft.pysyncobj.peer_connection import HANDSHAKE_SECONDS, MAX_UNAUTHENTICATED
from kvnode.raft.pysyncobj.snapshot_gate import SnapshotGate
from kvnode.storage.timings import Timings

log = logging.getLogger(__name__)
cluster_warnings = LogLimiter(log)

# Messages that acknowledge nothing this node stored: the leader's replication
# (followers do not count it as durable anywhere) and command forwarding.
# ReadIndex's messages confirm leadership, never storage.
UNSYNCED_MESSAGES = frozenset(
    {"append_entries", "apply_command", "apply_command_response", *read_index.MESSAGES}
)


def names_a_peer_or_command(message: Any, commands: dict[str, Any]) -> bool:
    if isinstance(message, str):
        return True
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        return False
    return message[0] in commands


class SyncedTransport(TransportBase):
    # Set by `bind_journal` before PySyncObj creates the transport.
    journal: DurableJournal
    syncer: JournalSyncer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._gate = SnapshotGate()  # before TCPTransport starts receiving
        self._outbox = Outbox()
        # While an append is being handled: the highest index its reply may acknowledge.
        self._acknowledge_limit: dict[Any, int] = {}
        # On the leader, per follower: when the oldest unanswered append-entries went out,
        # and how long acknowledgements took (network both ways plus the follower's
        # journal fsync), for /metrics.
        self._unanswered_since: dict[Any, float] = {}
        self.ack_timings: dict[Any, Timings] = {}
        super().__init__(*args, **kwargs)

    @classmethod
    def bind_journal(cls, journal: DurableJournal, syncer: JournalSyncer) -> type[SyncedTransport]:
        """A subclass bound to one node's journal (PySyncObj instantiates the class itself)."""
        return type("BoundSyncedTransport", (cls,), {"journal": journal, "syncer": syncer})

    def _onNewIncomingConnection(self, conn: Any) -> None:
        """Accept a peer connection, unless MAX_UNAUTHENTICATED connections already wait to
        authenticate: each holds a descriptor, and a node out of descriptors cannot sync
        its journal."""
        if len(self._unknownConnections) >= MAX_UNAUTHENTICATED:
            conn.refuse(f"{MAX_UNAUTHENTICATED} connections are already authenticating")
            return
        super()._onNewIncomingConnection(conn)

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:
        """The first message of an accepted connection names the peer it comes from.
        PySyncObj takes any name; refused here instead:
        - anything but a name or a utility command (a dict raised on the tick thread);
        - a member this node dials itself: of two members the higher address connects,
          so that claim is false, and taking it would put the accepted socket in place of
          this node's own connection to the member, which is then redialled without ever
          saying who is calling: the two would stay cut off until restarted;
        - "readonly": kvnode has no read-only members, and one could still vote."""
        if self._syncObj.encryptor and not conn.sendRandKey:
            super()._onIncomingMessageReceived(conn, message)  # the cipher's nonce comes first
            return
        why = None
        if not names_a_peer_or_command(message, self._onUtilityMessageCallbacks):
            why = "its first message names no peer"
        elif message == "readonly":
            why = "it asks to be a read-only member, which kvnode does not have"
        elif (
            isinstance(message, str)
            and message in self._nodeAddrToNode
            and self._shouldConnect(self._nodeAddrToNode[message])
        ):
            why = f"it claims to be {message}, a member this node connects to itself"
        if why is not None:
            conn.refuse(why)
            self._unknownConnections.discard(conn)
            return
        super()._onIncomingMessageReceived(conn, message)

    def _onTick(self) -> None:
        super()._onTick()
        if self._unknownConnections:
            now = time.monotonic()
            for conn in [c for c in self._unknownConnections if c.handshake_overdue(now)]:
                conn.refuse(f"not authenticated as a member within {HANDSHAKE_SECONDS:g} s")

    def _createServer(self) -> None:
        """A lone node without a cluster secret has no one to listen to: it opens no peer
        port at all, so nothing can reach its unauthenticated message decoding."""
        config = self.node.kv_config
        if config.single_node and not config.cluster_secret:
            self.mark_ready_without_server()
            return
        super()._createServer()

    def send(self, node: Any, message: Any) -> bool:
        cluster_id = self.node.machine.cluster_id
        if cluster_id and isinstance(message, dict):
            message["cluster_id"] = cluster_id  # PySyncObj builds a fresh dict per send
        if message.get("type") == "request_vote":
            self.node.prevote.mark_vote_request(message)
        elif message.get("type") == "append_entries":
            self._unanswered_since.setdefault(node, time.monotonic())
        elif message.get("type") == "next_node_idx":
            message["term"] = self.node.raftCurrentTerm  # leader_match.answers_another_term
        limit = self._acknowledge_limit.get(node)
        if (
            limit is not None
            and message.get("type") == "next_node_idx"
            and message.get("success")
            and message["next_node_idx"] > limit + 1
        ):
            message = {**message, "next_node_idx": limit + 1}
        depends = message.get("type") not in UNSYNCED_MESSAGES and self.journal.unsynced
        if depends or self._outbox.holds_for(node):
            # PySyncObj does not look at the result; a message the connection cannot take
            # when it is released is lost like any other on a broken connection.
            self._outbox.hold(node, self.journal.generation if depends else 0, message)
            self.syncer.request()
            sent = True
        else:
            sent = self._send_now(node, message)
        if sent:
            self._note_commit_news(node, message)
        return sent

    def _note_commit_news(self, node: Any, message: dict[str, Any]) -> None:
        """What a follower was told of the commit index, or now waits to see committed: a
        forwarded write's log index, a read index (commit_notice.py)."""
        kind = message.get("type")
        if kind == "append_entries":
            self.node.commit_notice.told(node, message.get("commit_index", 0))
        elif kind == "apply_command_response" and "log_idx" in message:
            self.node.commit_notice.awaited_by(node, message["log_idx"])
        elif kind == read_index.READ_INDEX_REPLY and "index" in message:
            self.node.commit_notice.awaited_by(node, message["index"])

    def release_synced(self) -> None:
        """Send the held messages whose journal changes are now on disk (tick thread)."""
        if self._outbox:
            self._outbox.release(self.journal.synced_generation, self._send_now)

    def _send_now(self, node: Any, message: Any) -> bool:
        """PySyncObj's send, once the connection's key exchange is done. PySyncObj counts
        an outgoing connection as up as soon as TCP connects, and a message sent before
        the peer's nonce arrived goes out without it: the peer cannot authenticate it and
        hangs up (seen as "a different cluster_secret?" when nodes start together). Until
        then the message is dropped like one on a dead connection; Raft sends again."""
        connection = self._connections.get(node)
        if self._syncObj.encryptor and connection is not None and not connection.sendRandKey:
            return False
        return bool(super().send(node, message))

    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if self._from_another_cluster(node, message):
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind in ("request_vote", PRE_VOTE) and self.node.catch_up.active:
            return  # a replacement still catching up must not vote (catch_up.py)
        prevote = self.node.prevote
        if kind == PRE_VOTE:
            prevote.on_request(node, message)
            return
        if kind == PRE_VOTE_REPLY:
            prevote.on_reply(message)
            return
        if kind in read_index.MESSAGES:
            self.node.read_index.on_message(node, message)
            return
        if kind == "request_vote" and prevote.ignores_vote_request(message):
            log.info(
                "ignored a vote request for term %r from %s: a live leader is known",
                message.get("term"),
                node_address(node),
            )
            return
        if kind == TERM_AHEAD:
            self.node.step_down_behind(node_address(node), message.get("term"))
            return
        if (
            kind == "append_entries"
            and isinstance(message.get("term"), int)
            and message["term"] < self.node.raftCurrentTerm
        ):
            # PySyncObj ignores a leader of an older term; say so, or this node stays out.
            self.send(node, {"type": TERM_AHEAD, "term": self.node.raftCurrentTerm})
            return
        if kind == "append_entries" and message.get("term", -1) >= self.node.raftCurrentTerm:
            prevote.heard_from_leader()
            if "prevLogIdx" in message:
                self._append_as_raft_says(node, message)
                return
        if (
            kind == "timeout_now"
            and message.get("term", -1) >= self.node.raftCurrentTerm
            and self.node.leader_address() == node_address(node)
        ):
            prevote.leader_hands_over()
        if (
            isinstance(message, dict)
            and message.get("type") == "append_entries"
            and message.get("serialized") is not None
            and self._refuse_stale_snapshot(node, message["serialized"])
        ):
            return
        if kind == "next_node_idx" and answers_another_term(message, self.node.raftCurrentTerm):
            log.debug("dropped a reply of term %r from %s", message.get("term"), node)
            return
        if kind == "next_node_idx":
            self._time_acknowledgement(node)
        if kind == "next_node_idx" and message.get("reset") and self.node.is_leader():
            matched = self.node.follower_reported(node)
            if (
                isinstance(message.get("next_node_idx"), int)
                and message["next_node_idx"] <= matched
            ):
                message = {**message, "next_node_idx": matched + 1}
        if not (
            isinstance(message, dict)
            and message.get("type") == "next_node_idx"
            and message.get("success")
            and not message.get("reset")
        ):
            super()._onMessageReceived(node, message)
            return
        next_index = self.node.next_index_map()
        sent_up_to = next_index.get(node)
        super()._onMessageReceived(node, message)
        if sent_up_to is not None and next_index.get(node, sent_up_to) < sent_up_to:
            next_index[node] = sent_up_to
        if self.node.is_leader():
            self.node.note_follower_match(node)

    def _time_acknowledgement(self, peer: Any) -> None:
        sent = self._unanswered_since.pop(peer, None)
        if sent is not None:
            timings = self.ack_timings.get(peer)
            if timings is None:
                timings = self.ack_timings[peer] = Timings()
            timings.observe(time.monotonic() - sent)

    def _from_another_cluster(self, node: Any, message: Any) -> bool:
        """A message from a node of another cluster (its peer list names this node, or this
        node's names it) is dropped, loudly: obeying it would mix two clusters' logs. A
        message without an id comes from a node that has not learnt one yet (a new
        cluster's first moments, or a node joining): it is taken."""
        if not isinstance(message, dict):
            return False
        theirs, ours = message.get("cluster_id"), self.node.machine.cluster_id
        if not theirs or not ours or theirs == ours:
            return False
        peer = node_address(node)
        cluster_warnings.warning(
            f"cluster {peer}",
            "refused messages from %s: it belongs to cluster %s, this node to cluster %s"
            " (a peer list that names another cluster's node?)",
            peer,
            theirs,
            ours,
        )
        return True

    def _append_as_raft_says(self, node: Any, message: dict[str, Any]) -> None:
        """Hand PySyncObj the §5.3 equivalent of an append-entries message (see
        follower_append.py); its reply acknowledges only what the message covered."""
        transmission = message.get("transmission")
        if transmission == "finish":
            message = self._whole_transmission(message)
            transmission = message.get("transmission")
        if transmission is not None:  # a piece of a large entry: nothing is appended yet
            super()._onMessageReceived(node, message)
            return
        journal = self.journal
        plan = plan_append(
            journal.term_at,
            journal.last_index,
            message["prevLogIdx"],
            message["prevLogTerm"],
            message.get("entries", []),
        )
        if plan is None:  # no matching previous entry: PySyncObj refuses it, changing nothing
            super()._onMessageReceived(node, message)
            return
        self._refuse_committed_conflict(plan)
        equivalent = {
            **message,
            "prevLogIdx": plan.prev_index,
            "prevLogTerm": plan.prev_term,
            "entries": plan.entries,
            "commit_index": min(message["commit_index"], plan.commit_bound),
        }
        self._acknowledge_limit[node] = plan.acknowledge
        try:
            super()._onMessageReceived(node, equivalent)
        finally:
            del self._acknowledge_limit[node]

    def _whole_transmission(self, message: dict[str, Any]) -> dict[str, Any]:
        """The last piece of a large entry: the message with the whole entry in it.
        PySyncObj may call a piece "finish" before the last one (it compares the piece's
        end with the command's length, not the encoded entry's); a "finish" that does not
        complete the entry keeps collecting."""
        received = self.node.take_transmission(message["data"])
        entry = _decode_entry(received)
        if entry is None:
            return {**message, "transmission": "start", "data": received}
        plain = {k: v for k, v in message.items() if k not in ("transmission", "data")}
        return {**plain, "entries": [entry]}

    def _refuse_committed_conflict(self, plan: AppendPlan) -> None:
        """Raft never asks a follower to cut a committed entry; if a leader does, this
        node's log or the leader's is wrong, and going on would diverge for good."""
        if plan.conflict is None:
            return
        applied, committed = self.node.raftLastApplied, self.node.raftCommitIndex
        if plan.conflict <= applied:
            fail_stop(
                f"truncating already-applied log entries from index {plan.conflict}"
                f" (last applied: {applied}) - refused: the leader's log conflicts with"
                " entries this node applied"
            )
        if plan.conflict <= committed:
            fail_stop(
                f"truncating committed log entries from index {plan.conflict}"
                f" (commit index: {committed}) - refused: the leader's log conflicts with"
                " entries this node knows are committed"
            )

    def _onNodeDisconnected(self, node: Any) -> None:
        super()._onNodeDisconnected(node)
        self._outbox.drop(node)
        self._unanswered_since.pop(node, None)  # no reply will time it
        self.node.forget_follower(node)

    def _refuse_stale_snapshot(self, node: Any, chunk: Any) -> bool:
        """Drop a snapshot older than this node's commit index (snapshot_gate.py)."""
        commit_index = self.node.raftCommitIndex
        drop, refused = self._gate.screen(chunk, commit_index)
        if refused is not None:
            log.warning(
                "refused a snapshot at index %d from %s: this node has already committed up"
                " to %d; asked the leader for the entries after %d instead",
                refused,
                node,
                commit_index,
                commit_index,
            )
            # PySyncObj's own reply format: "send me entries from this index on".
            self.send(
                node,
                {
                    "type": "next_node_idx",
                    "next_node_idx": commit_index + 1,
                    "reset": True,
                    "success": False,
                },
            )
        return drop


def _decode_entry(data: bytes) -> Entry | None:
    """A log entry as PySyncObj sends a large one: the pickled (command, index, term)."""
    try:
        entry = peer_pickle.loads(data)
    except Exception:  # an incomplete or foreign encoding: not a whole entry yet
        return None
    if (
        isinstance(entry, tuple)
        and len(entry) == 3
        and isinstance(entry[0], bytes)
        and isinstance(entry[1], int)
        and isinstance(entry[2], int)
    ):
        return entry
    return None
