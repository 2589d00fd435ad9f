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
import functools
import logging
from collections.abc import Callable
from typing import Any

from kvnode import commands
from kvnode.consensus import Indeterminate
from kvnode.storage.outcome import Outcome

log = logging.getLogger(__name__)

MAX_BATCH_COMMANDS = 256
Waiter = asyncio.Future[Outcome]
ProposeThen = Callable[[bytes, Callable[[Any, BaseException | None], None]], None]


class WriteBatcher:
    def __init__(self, propose_then: ProposeThen, max_bytes: int) -> None:
        """`propose_then(command, settle)` replicates one encoded command and calls
        `settle(outcome, error)` on the loop (raft/proposer.py); a batch holds at most
        `max_bytes` of commands (a larger command goes alone), so it fits any peer frame
        one would."""
        self._propose_then = propose_then
        self._max_bytes = max_bytes
        self._pending: list[tuple[bytes, Waiter]] = []
        self._flush_scheduled = False

    def propose(self, command: bytes) -> Waiter:
        """The future of `command`'s outcome (not a coroutine: a write awaits it directly,
        with no coroutine frame per layer between the handler and the batch)."""
        loop = asyncio.get_running_loop()
        waiter: Waiter = loop.create_future()
        self._pending.append((command, waiter))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return waiter

    def _flush(self) -> None:
        """At the end of the turn: each group goes to Raft now, with no task between (a
        write at one connection waits for no further turn of the loop)."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for group in self._groups(pending):
            encoded = group[0][0] if len(group) == 1 else commands.batch([c for c, _w in group])
            settle = functools.partial(_settle, group)
            try:
                self._propose_then(encoded, settle)
            except Exception as exc:  # a bug, not a refusal: the writes hear of it, not hang
                log.exception("could not propose a batch of writes")
                settle(None, Indeterminate(f"the write could not be proposed: {exc}"))

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


def _settle(group: list[tuple[bytes, Waiter]], outcome: Any, error: BaseException | None) -> None:
    """Each write of a group gets its own outcome (a batch's parts, in order), or the
    group's error: when a batch's outcome is unknown, so is each write's."""
    if error is not None:
        for _command, waiter in group:
            if not waiter.done():
                waiter.set_exception(error)
        return
    parts = (outcome,) if len(group) == 1 else outcome.parts
    for (_command, waiter), part in zip(group, parts, strict=True):
        if not waiter.done():
            waiter.set_result(part)
