"""The write batcher: writes of one event-loop turn share an entry, each gets its own part
of the outcome, and a failed entry fails each write with the same error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kvnode.commands_pb2 import Command
from kvnode.consensus import Indeterminate
from kvnode.raft.batcher import MAX_BATCH_COMMANDS, WriteBatcher
from kvnode.storage.outcome import Outcome, Status


class FakeLog:
    """Raft's stand-in: an entry's outcome comes one turn of the loop after it is proposed,
    as a callback (the Proposer's way)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.entries: list[bytes] = []
        self.fail = fail

    def propose_then(
        self, encoded: bytes, settle: Callable[[Any, BaseException | None], None]
    ) -> None:
        self.entries.append(encoded)
        loop = asyncio.get_running_loop()
        if self.fail is not None:
            loop.call_soon(settle, None, self.fail)
            return
        command = Command.FromString(encoded)
        if command.WhichOneof("op") != "batch":
            loop.call_soon(settle, Outcome(Status.OK, len(self.entries)), None)
            return
        parts = tuple(Outcome(Status.OK, n) for n in range(len(command.batch.commands)))
        loop.call_soon(settle, Outcome(Status.OK, 0, parts=parts), None)


def noop_with(n: int) -> bytes:
    return Command(issued_at_ms=n, request_id=f"r{n}").SerializeToString()


def test_writes_of_one_turn_share_an_entry_and_get_their_own_outcomes() -> None:
    log = FakeLog()

    async def scenario() -> list[Outcome]:
        batcher = WriteBatcher(log.propose_then, max_bytes=1 << 20)
        return await asyncio.gather(*(batcher.propose(noop_with(n)) for n in range(10)))

    outcomes = asyncio.run(scenario())
    assert len(log.entries) == 1
    assert [o.revision for o in outcomes] == list(range(10))


def test_a_lone_write_goes_as_itself_and_batches_are_bounded() -> None:
    log = FakeLog()

    async def scenario() -> None:
        batcher = WriteBatcher(log.propose_then, max_bytes=1 << 20)
        await batcher.propose(noop_with(1))
        assert Command.FromString(log.entries[0]).WhichOneof("op") is None  # not a batch
        count = MAX_BATCH_COMMANDS + 1
        await asyncio.gather(*(batcher.propose(noop_with(n)) for n in range(count)))
        assert len(log.entries) == 3  # the lone one, then a full batch and one more
        small = WriteBatcher(log.propose_then, max_bytes=len(noop_with(1)) * 2)
        log.entries.clear()
        await asyncio.gather(*(small.propose(noop_with(n)) for n in range(4)))

    asyncio.run(scenario())
    assert len(log.entries) == 2  # four writes, two fit in each entry


def test_an_unknown_outcome_is_every_writes_unknown_outcome() -> None:
    log = FakeLog(fail=Indeterminate("leader lost"))

    async def scenario() -> list[BaseException | Outcome]:
        batcher = WriteBatcher(log.propose_then, max_bytes=1 << 20)
        return await asyncio.gather(
            *(batcher.propose(noop_with(n)) for n in range(3)), return_exceptions=True
        )

    results = asyncio.run(scenario())
    assert all(isinstance(r, Indeterminate) for r in results)
    assert len(log.entries) == 1
