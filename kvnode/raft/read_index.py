"""Linearizable reads without a log entry: Raft's ReadIndex (Ongaro's thesis, §6.4).

A read barrier used to be a no-op command through the log: a journal write and
an fsync on a majority per round of reads, and a revision consumed by every
read. ReadIndex gives the same guarantee with one message round and nothing
written:

1. The leader notes its commit index (the *read index*). It must already have
   committed an entry of its own term, or its commit index could be missing
   entries an earlier leader committed.
2. It confirms that it still leads: it sends `kv_read_probe` for its term to
   the voters, and a majority (itself included) answers `kv_read_ack` in that
   same term. No other leader can then have been elected before those answers,
   so nothing was committed that the read index does not cover.
3. The reader waits until its node has applied up to the read index, and
   reads. A follower asks the leader for a read index (`kv_read_index`), then
   waits for its own state machine.

All reads that arrive while a round is being confirmed share the next round, and a
follower asks once for all the reads that arrived since its previous tick.
Everything here runs in the Raft tick thread, except `request`.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

READ_INDEX = "kv_read_index"  # follower -> leader: {"type", "id"}
READ_INDEX_REPLY = "kv_read_index_reply"  # leader -> follower: {"type", "id", "index"|"error"}
READ_PROBE = "kv_read_probe"  # leader -> voters: {"type", "term", "round"}
READ_ACK = "kv_read_ack"  # voter -> leader: {"type", "term", "round"}
MESSAGES = frozenset({READ_INDEX, READ_INDEX_REPLY, READ_PROBE, READ_ACK})

ReadCallback = Callable[[str | None], None]
"""Called once: None when the reader may read its node's state, else why not (a reason
code; nothing was read, so the reader may retry)."""


class ReadView(Protocol):
    """What ReadIndex needs of the Raft node (raft/pysyncobj/node.py)."""

    def raft_term(self) -> int: ...
    def is_leader(self) -> bool: ...
    def leader_node(self) -> Any | None: ...
    def peers(self) -> list[Any]: ...
    def commit_index(self) -> int: ...
    def committed_in_current_term(self) -> bool: ...
    def applied_index(self) -> int: ...
    def send(self, peer: Any, message: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class _Reader:
    """A read on this node (`callback`, once applied up to the index), or a follower's
    request (`peer`, `read_id`: it is sent the index)."""

    callback: ReadCallback | None = None
    peer: Any = None
    read_id: int = 0


@dataclass
class _Round:
    term: int
    index: int
    deadline: float
    readers: list[_Reader]
    acks: set[Any] = field(default_factory=set)


class ReadIndex:
    def __init__(self, view: ReadView, timeout: float) -> None:
        self._view = view
        self._timeout = timeout
        self._incoming: collections.deque[ReadCallback] = collections.deque()  # any thread
        self._waiting: list[_Reader] = []  # for the next round (and a current-term commit)
        self._waiting_since = 0.0
        self._rounds: dict[int, _Round] = {}
        # (read index, deadline, reader): released once applied that far, failed if not
        # by the deadline (a follower cut off after it got its index).
        self._applied_waiters: list[tuple[int, float, ReadCallback]] = []
        # follower: request id -> (deadline, the readers waiting for that one answer)
        self._asked: dict[int, tuple[float, list[ReadCallback]]] = {}
        # Ids no earlier process of this node can have used (late replies are ignored).
        self._ids = itertools.count(time.time_ns())

    def request(self, reader: ReadCallback) -> None:
        """A reader wants a linearizable view (any thread; the tick picks it up)."""
        self._incoming.append(reader)

    # -- the tick ----------------------------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        arrived: list[ReadCallback] = []
        while self._incoming:
            arrived.append(self._incoming.popleft())
        if self._view.is_leader():
            self._wait_for_round([_Reader(callback) for callback in arrived], now)
            if self._waiting and self._view.committed_in_current_term():
                readers, self._waiting = self._waiting, []
                self._start_round(readers, now)
            elif self._waiting and now - self._waiting_since > self._timeout:
                self._fail(self._waiting, "no_quorum")
                self._waiting = []
        else:
            self._fail(self._waiting, "not_leader")
            self._waiting = []
            for round_ in self._rounds.values():
                self._fail(round_.readers, "not_leader")
            self._rounds.clear()
            if arrived:
                self._ask_leader(arrived, now)
        self._expire(now)
        self._release_applied()

    def _wait_for_round(self, readers: list[_Reader], now: float) -> None:
        if readers and not self._waiting:
            self._waiting_since = now
        self._waiting.extend(readers)

    def _start_round(self, readers: list[_Reader], now: float) -> None:
        view = self._view
        round_ = _Round(view.raft_term(), view.commit_index(), now + self._timeout, readers)
        peers = view.peers()
        if not peers:  # alone: leading is proof enough
            self._confirmed(round_)
            return
        round_id = next(self._ids)
        self._rounds[round_id] = round_
        probe = {"type": READ_PROBE, "term": round_.term, "round": round_id}
        for peer in peers:
            view.send(peer, probe)

    def _ask_leader(self, readers: list[ReadCallback], now: float) -> None:
        leader = self._view.leader_node()
        if leader is None:
            for reader in readers:
                reader("no_leader")
            return
        read_id = next(self._ids)
        self._asked[read_id] = (now + self._timeout, readers)
        self._view.send(leader, {"type": READ_INDEX, "id": read_id})

    def _confirmed(self, round_: _Round) -> None:
        for reader in round_.readers:
            if reader.callback is not None:
                self._wait_for_apply(round_.index, reader.callback)
            else:
                self._reply(reader, index=round_.index)

    def _reply(self, reader: _Reader, *, index: int = 0, error: str = "") -> None:
        answer: dict[str, Any] = {"type": READ_INDEX_REPLY, "id": reader.read_id}
        if error:
            answer["error"] = error
        else:
            answer["index"] = index
        self._view.send(reader.peer, answer)

    def _fail(self, readers: list[_Reader], reason: str) -> None:
        for reader in readers:
            if reader.callback is not None:
                reader.callback(reason)
            else:
                self._reply(reader, error=reason)

    def _expire(self, now: float) -> None:
        for round_id in [i for i, r in self._rounds.items() if r.deadline < now]:
            self._fail(self._rounds.pop(round_id).readers, "no_quorum")
        for read_id in [i for i, (deadline, _r) in self._asked.items() if deadline < now]:
            _deadline, readers = self._asked.pop(read_id)
            for reader in readers:
                reader("no_leader")

    def _wait_for_apply(self, index: int, reader: ReadCallback) -> None:
        self._applied_waiters.append((index, time.monotonic() + self._timeout, reader))

    def _release_applied(self) -> None:
        if not self._applied_waiters:
            return
        applied, now = self._view.applied_index(), time.monotonic()
        still = []
        for index, deadline, reader in self._applied_waiters:
            if applied >= index:
                reader(None)
            elif deadline < now:
                reader("no_leader")  # nothing new applied in time: cut off from the leader
            else:
                still.append((index, deadline, reader))
        self._applied_waiters = still

    # -- messages (tick thread) ------------------------------------------------------------

    def on_message(self, peer: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        view = self._view
        if kind == READ_PROBE:
            # Still in the leader's term, and following it: the read may be served.
            if message.get("term") == view.raft_term() and not view.is_leader():
                ack = {"type": READ_ACK, "term": message["term"], "round": message.get("round")}
                view.send(peer, ack)
        elif kind == READ_ACK:
            round_id = message.get("round")
            if not isinstance(round_id, int):
                return
            round_ = self._rounds.get(round_id)
            if round_ is None or message.get("term") != round_.term:
                return
            if round_.term != view.raft_term() or not view.is_leader():
                return
            round_.acks.add(peer)
            if len(round_.acks) + 1 > (len(view.peers()) + 1) / 2:
                del self._rounds[round_id]
                self._confirmed(round_)
        elif kind == READ_INDEX:
            reader = _Reader(peer=peer, read_id=message.get("id", 0))
            if view.is_leader():
                self._wait_for_round([reader], time.monotonic())
            else:
                self._reply(reader, error="not_leader")
        elif kind == READ_INDEX_REPLY:
            asked = self._asked.pop(message.get("id", -1), None)
            if asked is None:
                return
            _deadline, readers = asked
            index = message.get("index")
            for waiting in readers:
                if isinstance(index, int):
                    self._wait_for_apply(index, waiting)
                else:
                    waiting(str(message.get("error", "no_leader")))
