"""Run a coroutine at once, in the caller's frame, and on from each wait in the callback of
the future it waits on: no task.

A request on the lean path that needs nothing from another thread (a stale GET, any
refusal) is answered without a coroutine (kvnode.http.lean); one that waits does so on
one future or two (its batch's outcome, a read barrier). A task for it costs a
scheduled first step, a wake-up per wait and a scheduled done callback, more than the
request's own work; driving the coroutine from the futures' callbacks costs one
callback per wait.

What such a coroutine may await: futures and what awaits them (`shield`, another
coroutine). It runs with no current task, so not `asyncio.timeout` (which needs one)
nor a bare `yield` of anything but a future; it is not cancelled with a connection
(nothing it awaits belongs to one).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
Finished = Callable[[Any], None]
"""Called once with the coroutine's result, or with the exception it ended with."""


def drive(coro: Coroutine[Any, Any, T], finished: Finished) -> bool:
    """Run `coro` until its first wait; True if it finished (and `finished` was called)."""
    return _step(coro, finished, None)


def _step(coro: Coroutine[Any, Any, Any], finished: Finished, _done: object) -> bool:
    try:
        waiting_on = coro.send(None)
    except StopIteration as done:
        finished(done.value)
        return True
    except BaseException as exc:  # handed to `finished`, as a task would keep it
        finished(exc)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return True
    if not getattr(waiting_on, "_asyncio_future_blocking", False):
        coro.close()
        finished(RuntimeError(f"a coroutine driven without a task awaited {waiting_on!r}"))
        return True
    future: asyncio.Future[Any] = waiting_on
    future._asyncio_future_blocking = False  # what a task does before it waits on one
    future.add_done_callback(functools.partial(_step, coro, finished))
    return False
