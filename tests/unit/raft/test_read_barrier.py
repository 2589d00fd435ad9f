"""The reads of one event-loop turn share one read-index request; a reader that goes away
does not take the others' barrier with it; a barrier never answered times out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kvnode.consensus import Unavailable
from kvnode.raft.proposer import ReadBarrier


class FakeNode:
    """Records each read request; the test answers them as the Raft thread would."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self._asked = asyncio.Event()

    def request_read(self, callback: Any) -> None:
        self.requests.append(callback)
        self._asked.set()

    async def asked(self, count: int) -> None:
        """Return once `count` requests have come (each within 5 s)."""
        while len(self.requests) < count:
            self._asked.clear()
            await asyncio.wait_for(self._asked.wait(), 5)


def test_the_reads_of_one_turn_share_one_request() -> None:
    async def scenario() -> None:
        node = FakeNode()
        barrier = ReadBarrier(node, timeout=5.0)  # type: ignore[arg-type]
        first = [asyncio.ensure_future(barrier.wait()) for _ in range(20)]
        await node.asked(1)  # they all wait in one turn; the request goes at its end
        assert len(node.requests) == 1
        later = asyncio.ensure_future(barrier.wait())  # arrived after: needs its own
        await node.asked(2)
        assert len(node.requests) == 2
        first[0].cancel()  # its client went away
        node.requests[0](None)
        await asyncio.gather(*first[1:])
        assert not later.done()
        node.requests[1]("not_leader")
        with pytest.raises(Unavailable) as refused:
            await later
        assert refused.value.reason == "not_leader"

    asyncio.run(scenario())


def test_a_barrier_never_answered_times_out() -> None:
    async def scenario() -> None:
        barrier = ReadBarrier(FakeNode(), timeout=0.05)  # type: ignore[arg-type]
        with pytest.raises(Unavailable) as refused:
            await barrier.wait()
        assert refused.value.reason == "timeout"

    asyncio.run(scenario())
