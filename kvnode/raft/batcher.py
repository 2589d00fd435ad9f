"""Group commit of client writes: the writes that arrive in one turn of the event loop go to
Raft as one log entry (a `Batch` command).

Raft's per-entry work (PySyncObj's pickling and bookkeeping, a journal frame,
a wakeup, a callback, an apply under the lock) is then paid once per batch,
not once per request. Nothing else changes: the state machine applies a
batch's commands in order, each at its own revision with its own outcome and
request id (so retries stay exactly-once), and the batch as a whole is
acknowledged, fsynced on a majority, or not at all. A write alone in its turn
goes as itself. When a batch's outcome is unknown, so is each write's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kvnode import commands
from kvnode.consensus import ProposalError
from kvnode.storage.outcome import Outcome

MAX_BATCH_COMMANDS = 256
Waiter = asyncio.Future[Outcome]


class WriteBatcher:
    def __init__(self, propose: Callable[[bytes], Awaitable[Outcome]], max_bytes: int) -> None:
        """`propose` replicates one encoded command; a batch holds at most `max_bytes` of
        commands (a larger command goes alone), so it fits any peer frame one would."""
        self._propose = propose
        self._max_bytes = max_bytes
        self._pending: list[tuple[bytes, Waiter]] = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    async def propose(self, command: bytes) -> Outcome:
        loop = asyncio.get_running_loop()
        waiter: Waiter = loop.create_future()
        self._pending.append((command, waiter))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await waiter

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for group in self._groups(pending):
            task = asyncio.ensure_future(self._send(group))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _groups(self, pending: list[tuple[bytes, Waiter]]) -> list[list[tuple[bytes, Waiter]]]:
        groups: list[list[tuple[bytes, Waiter]]] = []
        size = 0
        for item in pending:
            if item[1].done():
                continue  # its request was cancelled: nothing to send
            length = len(item[0])
            if (
                not groups
                or len(groups[-1]) >= MAX_BATCH_COMMANDS
                or size + length > self._max_bytes
            ):
                groups.append([])
                size = 0
            groups[-1].append(item)
            size += length
        return groups

    async def _send(self, group: list[tuple[bytes, Waiter]]) -> None:
        encoded = group[0][0] if len(group) == 1 else commands.batch([c for c, _w in group])
        try:
            outcome = await self._propose(encoded)
        except ProposalError as exc:
            for _command, waiter in group:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        parts = (outcome,) if len(group) == 1 else outcome.parts
        for (_command, waiter), part in zip(group, parts, strict=True):
            if not waiter.done():
                waiter.set_result(part)
