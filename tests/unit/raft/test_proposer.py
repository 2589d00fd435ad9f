"""The Proposer's answers: the result on success, `Unavailable` only when the command
certainly was not applied, `Indeterminate` otherwise (a lost callback: its deadline); each
answer once, given from the Raft thread's callback, and none to a caller that left."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from kvnode.consensus import Indeterminate, Unavailable
from kvnode.raft.proposer import Proposer
from kvnode.raft.pysyncobj.adapter import FAIL_REASON, SUCCESS
from tests.waiting import wait_until


class FakeNode:
    """Keeps each proposal's callback for the test to answer, from another thread as
    PySyncObj's tick thread would."""

    def __init__(self, leader: str | None = "127.0.0.1:4321") -> None:
        self.leader = leader
        self.callbacks: list[Any] = []

    def leader_address(self) -> str | None:
        return self.leader

    def propose(self, _command: bytes, callback: Any) -> None:
        self.callbacks.append(callback)

    def answer(self, number: int, result: Any, error: int) -> None:
        thread = threading.Thread(target=self.callbacks[number], args=(result, error))
        thread.start()
        thread.join()


def settled_with(proposer: Proposer, node: FakeNode, *answers: tuple[Any, int]) -> Any:
    """Propose once, answer it with `answers` in turn; what `settle` got, and how often."""

    async def scenario() -> list[tuple[Any, BaseException | None]]:
        got: list[tuple[Any, BaseException | None]] = []
        done = asyncio.Event()

        def settle(result: Any, error: BaseException | None) -> None:
            got.append((result, error))
            done.set()

        proposer.propose_then(b"command", settle)
        for result, error in answers:
            node.answer(0, result, error)
        # Every answer is queued on the loop before this wait: a second one runs right
        # after the first, before the wait ends.
        await asyncio.wait_for(done.wait(), 5)
        return got

    return asyncio.run(scenario())


def test_a_success_is_the_result_once_even_if_answered_twice() -> None:
    node = FakeNode()
    proposer = Proposer(node, timeout=5.0)  # type: ignore[arg-type]
    got = settled_with(proposer, node, ("outcome", SUCCESS), (None, FAIL_REASON.DISCARDED))
    assert got == [("outcome", None)]
    assert proposer.counts == {"committed": 1, "failed": 0, "indeterminate": 0, "pending": 0}


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (FAIL_REASON.NOT_LEADER, Unavailable),
        (FAIL_REASON.LEADER_CHANGED, Indeterminate),  # may have been applied after all
    ],
)
def test_a_failure_is_unavailable_only_when_certainly_not_applied(
    error: int, kind: type[Exception]
) -> None:
    node = FakeNode()
    proposer = Proposer(node, timeout=5.0)  # type: ignore[arg-type]
    ((result, raised),) = settled_with(proposer, node, (None, error))
    assert result is None and type(raised) is kind


def test_a_success_without_an_outcome_is_indeterminate() -> None:
    node = FakeNode()
    ((_result, raised),) = settled_with(Proposer(node, 5.0), node, (None, SUCCESS))  # type: ignore[arg-type]
    assert isinstance(raised, Indeterminate)


def test_a_callback_that_never_comes_is_indeterminate_at_the_deadline() -> None:
    node = FakeNode()
    proposer = Proposer(node, timeout=0.05)  # type: ignore[arg-type]
    ((_result, raised),) = settled_with(proposer, node)
    assert isinstance(raised, Indeterminate) and "may still be applied" in str(raised)
    assert proposer.counts["indeterminate"] == 1 and proposer.counts["pending"] == 0


def test_without_a_leader_nothing_is_proposed() -> None:
    node = FakeNode(leader=None)
    got: list[Any] = []
    Proposer(node, 5.0).propose_then(b"command", lambda *answer: got.append(answer))  # type: ignore[arg-type]
    assert not node.callbacks
    ((_result, raised),) = got
    assert isinstance(raised, Unavailable) and raised.reason == "no_leader"


def test_an_answer_after_the_caller_left_is_dropped_quietly() -> None:
    node = FakeNode()
    proposer = Proposer(node, timeout=5.0)  # type: ignore[arg-type]

    async def scenario() -> None:
        waiting = asyncio.ensure_future(proposer.submit(lambda cb: node.propose(b"", cb)))

        async def proposed() -> bool:
            return bool(node.callbacks)

        async def answered() -> bool:
            return proposer.counts["pending"] == 0

        await wait_until(proposed, 5, "the proposal")
        waiting.cancel()
        node.answer(0, "late", SUCCESS)
        await wait_until(answered, 5, "the late answer to arrive")

    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    loop.run_until_complete(scenario())
    loop.close()
    assert not errors  # no "exception in callback" for the late answer
    assert proposer.counts["committed"] == 1
