"""Asyncio front of the Raft node: propose a command and await a definite or indeterminate
answer; share read barriers among concurrent linearizable reads.

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

from kvnode import commands
from kvnode.consensus import Indeterminate, Unavailable
from kvnode.raft.node import RaftNode
from kvnode.raft.pysyncobj_adapter import DEFINITE_FAILURES, SUCCESS
from kvnode.storage import Outcome


class Proposer:
    def __init__(self, node: RaftNode, timeout: float) -> None:
        self._node = node
        self._timeout = timeout

    async def propose(self, command: bytes) -> Outcome:
        """Replicate `command`; return its outcome once this node has applied it."""
        result = await self.submit(lambda callback: self._node.propose(command, callback))
        if result is None:
            raise Indeterminate("the write was committed without an outcome")
        assert isinstance(result, Outcome)
        return result

    async def submit(self, start: Callable[[Any], None]) -> Any:
        """Run `start(callback)` for a PySyncObj request and await its callback: the
        result on success, `Unavailable` when it certainly was not applied, otherwise
        `Indeterminate`."""
        if self._node.leader_address() is None:
            raise Unavailable("no_leader", "no leader is known; the cluster may be electing one")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[Any, int]] = loop.create_future()

        def on_result(result: Any, error: int) -> None:  # tick thread
            loop.call_soon_threadsafe(_settle, answer, result, error)

        start(on_result)
        try:
            result, error = await asyncio.wait_for(answer, self._timeout)
        except TimeoutError:
            raise Indeterminate(
                f"no outcome within {self._timeout:g} s; the write may still be applied"
            ) from None
        if error == SUCCESS:
            return result
        if error in DEFINITE_FAILURES:
            raise Unavailable(DEFINITE_FAILURES[error], "the write was not applied; retry")
        raise Indeterminate("leadership changed while the write was in flight")


def _settle(answer: asyncio.Future[tuple[Any, int]], result: Any, error: int) -> None:
    if not answer.done():
        answer.set_result((result, error))


class ReadBarrier:
    """Linearizable reads through the log: a no-op entry, shared by concurrent readers.

    A read may only use a barrier proposed *after* the read began (otherwise a
    write acknowledged in between could be missed). Readers that arrive while
    a barrier is in flight wait for the next one, which is launched as soon as
    the current one settles, so any number of concurrent reads costs at most
    two barriers of latency and one log entry per round.
    """

    def __init__(self, proposer: Proposer) -> None:
        self._proposer = proposer
        self._next: asyncio.Future[None] | None = None
        self._in_flight = False

    async def wait(self) -> None:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiter = self._next
        if not self._in_flight:
            self._launch()
        await asyncio.shield(waiter)

    def _launch(self) -> None:
        waiter, self._next = self._next, None
        assert waiter is not None
        self._in_flight = True
        asyncio.get_running_loop().create_task(self._run(waiter))

    async def _run(self, waiter: asyncio.Future[None]) -> None:
        try:
            await self._proposer.propose(commands.noop())
        except (Unavailable, Indeterminate) as exc:
            waiter.set_exception(exc)
        else:
            waiter.set_result(None)
        finally:
            self._in_flight = False
            if self._next is not None:
                self._launch()
