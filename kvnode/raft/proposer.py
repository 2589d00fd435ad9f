"""Asyncio front of the Raft node: propose a command and get a definite or indeterminate
answer (by callback for the batcher's writes, awaited for the rest); wait for a
linearizable read barrier.

PySyncObj's callbacks fire in its tick thread, may report LEADER_CHANGED for
commands that were in fact applied, and may never fire at all for a forwarded
command. So every proposal carries its own deadline, and anything short of a
SUCCESS or a failure code that proves the command was not applied is
answered as Indeterminate, never guessed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kvnode.consensus import Indeterminate, Unavailable
from kvnode.raft.pysyncobj.adapter import DEFINITE_FAILURES, SUCCESS
from kvnode.raft.pysyncobj.node import RaftNode

Settle = Callable[[Any, BaseException | None], None]
"""Called once on the event loop: (result, None), or (None, the error)."""


class Proposer:
    def __init__(self, node: RaftNode, timeout: float) -> None:
        self._node = node
        self._timeout = timeout
        # For /metrics, counted on the event loop only (plain integers, no lock): requests
        # to Raft (a batch of writes is one) by how they ended, and those under way.
        self.counts = {"committed": 0, "failed": 0, "indeterminate": 0, "pending": 0}

    def propose_then(self, command: bytes, settle: Settle) -> None:
        """Replicate `command`; `settle` gets its outcome once this node has applied it.
        A callback, not a coroutine: the batcher hands each write its outcome in the same
        turn of the loop as the Raft thread's answer arrives (docs/benchmarks.md)."""

        def outcome_of(result: Any, error: BaseException | None) -> None:
            if error is None and result is None:
                error = Indeterminate("the write was committed without an outcome")
            settle(result, error)

        self.start(lambda callback: self._node.propose(command, callback), outcome_of)

    async def submit(self, begin: Callable[[Any], None]) -> Any:
        """`start`, awaited: the result, or the error raised."""
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if answer.done():
                return  # the caller stopped waiting (its own deadline)
            if error is None:
                answer.set_result(result)
            else:
                answer.set_exception(error)

        self.start(begin, settle)
        return await answer

    def start(self, begin: Callable[[Any], None], settle: Settle) -> None:
        """Run `begin(callback)` for a PySyncObj request (on the event loop) and settle it
        once: with the result on success, `Unavailable` when it certainly was not applied,
        otherwise `Indeterminate` (a lost callback included: the timeout)."""
        if self._node.leader_address() is None:
            settle(
                None,
                Unavailable("no_leader", "no leader is known; the cluster may be electing one"),
            )
            return
        loop = asyncio.get_running_loop()
        counts = self.counts
        counts["pending"] += 1
        settled = False

        def finish(result: Any, error: int | None) -> None:  # event loop; None: timed out
            nonlocal settled
            if settled:
                return
            settled = True
            timer.cancel()
            counts["pending"] -= 1
            if error == SUCCESS:
                counts["committed"] += 1
                settle(result, None)
            elif error is None:
                counts["indeterminate"] += 1
                settle(
                    None,
                    Indeterminate(
                        f"no outcome within {self._timeout:g} s; the write may still be applied"
                    ),
                )
            elif error in DEFINITE_FAILURES:
                counts["failed"] += 1
                settle(
                    None, Unavailable(DEFINITE_FAILURES[error], "the write was not applied; retry")
                )
            else:
                counts["indeterminate"] += 1
                settle(None, Indeterminate("leadership changed while the write was in flight"))

        def on_result(result: Any, error: int) -> None:  # tick thread
            loop.call_soon_threadsafe(finish, result, error)

        timer = loop.call_later(self._timeout, finish, None, None)
        begin(on_result)


class ReadBarrier:
    """Linearizable reads by ReadIndex (read_index.py): returns once this node has applied
    everything committed before the call, confirmed by a majority in the leader's term.
    Nothing is written.

    The reads of one event-loop turn share one barrier, asked for at the end of the turn
    (after every one of them arrived, so it covers each): one request to the Raft
    thread, one wake-up, one answer back, one timer, however many reads there are."""

    def __init__(self, node: RaftNode, timeout: float) -> None:
        self._node = node
        self._timeout = timeout
        self._next: asyncio.Future[str | None] | None = None  # the barrier being gathered

    async def wait(self) -> None:
        if self._next is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            loop.call_soon(self._ask, loop, self._next)
        # Shielded: a reader that goes away must not cancel the barrier of the others.
        error = await asyncio.shield(self._next)
        if error == TIMED_OUT:
            raise Unavailable(
                "timeout", f"the read could not be confirmed within {self._timeout:g} s; retry"
            )
        if error is not None:
            raise Unavailable(error, "the read could not be confirmed by a majority; retry")

    def _ask(self, loop: asyncio.AbstractEventLoop, barrier: asyncio.Future[str | None]) -> None:
        """At the end of the turn: one read-index request for every read gathered in it."""
        self._next = None
        timer = loop.call_later(self._timeout, _settle_read, barrier, TIMED_OUT)

        def on_ready(error: str | None) -> None:  # tick thread
            loop.call_soon_threadsafe(_settle_read, barrier, error, timer)

        self._node.request_read(on_ready)


TIMED_OUT = "timeout"


def _settle_read(
    barrier: asyncio.Future[str | None], error: str | None, timer: asyncio.TimerHandle | None = None
) -> None:
    if timer is not None:
        timer.cancel()
    if not barrier.done():
        barrier.set_result(error)
