"""Run a coroutine's first step at once, in the caller's frame, and a task only if it waits.

A read that needs nothing from another thread (a stale GET, any refusal) finishes in
its first step; making a task for it, scheduling that task and waking it again cost
more than the read itself. Python 3.12's eager tasks do this; on 3.11 it is done here:
`start` runs the first step and returns the result, or a `Suspended` awaitable that a
task finishes (it hands the task the future the coroutine waits on, and resumes the
coroutine with what the task sends or throws, as a task would have).

The first step runs with no current task, so a coroutine started here must not need
one before it first waits (`asyncio.timeout` does; futures, `shield` and `wait_for` on
3.11 do not).
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Suspended(Generic[T]):
    """A coroutine stopped at its first wait; awaiting this finishes it."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, T], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, T]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                yield waiting_on
            except BaseException as exc:  # a cancellation reaches the coroutine's own wait
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                continue
            try:
                waiting_on = coro.send(None)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


async def finish(suspended: Suspended[T]) -> T:
    """The coroutine a task runs to finish a suspended one."""
    return await suspended


def start(coro: Coroutine[Any, Any, T]) -> T | Suspended[T]:
    """The coroutine's result if it finishes without waiting, else where it waits."""
    try:
        waiting_on = coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    return Suspended(coro, waiting_on)
