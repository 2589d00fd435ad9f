"""Running a command while a lock is held, the way `consul lock` does: the command starts
only once the lock is held, stops when the lock is lost, and the lock is given up as
soon as the command ends.

- SIGINT, SIGTERM and SIGHUP sent to `kvnode lock` while it waits end the wait (the
  lease is revoked, exit 128 + the signal); while the command runs they are forwarded to
  it, and `kvnode lock` exits with the command's code once it has ended.
- When the lock is lost (`Lock.lost`: the lease is gone, or `grace` seconds are left of
  the time it is certainly alive), the command gets SIGTERM, then SIGKILL `grace`
  seconds later, and `kvnode lock` exits with `EXIT_LOCK_LOST`. Since `lost` comes
  `grace` seconds before the lease can expire, the command has ended by the time
  another contender can hold the lock.
- The command dies with `kvnode lock` (Linux's parent-death signal): a `kvnode lock`
  killed with SIGKILL leaves no command running without the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from kvnode.client.coordination import Lock

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# kvnode lock's own failures, apart from any code the command may exit with: like
# `timeout`, `env` and `docker run`, 125 says "the wrapper failed, not the command".
EXIT_LOCK_LOST = 125
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def exit_code(returncode: int) -> int:
    """A shell's exit code for a child's return code (-N: killed by signal N)."""
    return 128 - returncode if returncode < 0 else returncode


class Signals:
    """The signals a supervisor forwards, received as a queue while it runs."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[int] = asyncio.Queue()

    def __enter__(self) -> Signals:
        loop = asyncio.get_running_loop()
        for number in FORWARDED_SIGNALS:
            loop.add_signal_handler(number, self.received.put_nowait, number)
        return self

    def __exit__(self, *_exc: object) -> None:
        loop = asyncio.get_running_loop()
        for number in FORWARDED_SIGNALS:
            loop.remove_signal_handler(number)


async def first_of(*awaitables: Awaitable[object]) -> tuple[int, object]:
    """Run the awaitables until one finishes and cancel the others: which one finished
    (its position) and its result (its exception is raised)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    which = next(i for i, task in enumerate(tasks) if task.done() and not task.cancelled())
    return which, tasks[which].result()


async def terminate(process: asyncio.subprocess.Process, grace: float) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds; the command's exit code."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        return await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return await process.wait()


async def run_holding(
    lock: Lock,
    command: Sequence[str],
    env: Callable[[Lock], dict[str, str]],
    report: Callable[[str], None],
) -> int:
    """Acquire `lock`, run `command` while it is held, release it; the exit code."""
    with Signals() as signals:
        try:
            which, received = await first_of(lock.acquire(), signals.received.get())
            if which == 1:
                return 128 + cast(int, received)
            process = await asyncio.create_subprocess_exec(
                *command, env={**os.environ, **env(lock)}, preexec_fn=_die_with_parent
            )
            return await _supervise(process, lock, signals, report)
        finally:
            await lock.release()


async def hold_until_stopped(lock: Lock, on_held: Callable[[Lock], None]) -> int:
    """Acquire `lock` (a campaign), call `on_held`, and hold it until a signal (exit 0,
    also while still campaigning) or until it is lost (`EXIT_LOCK_LOST`); released either
    way."""
    with Signals() as signals:
        try:
            which, _ = await first_of(lock.acquire(), signals.received.get())
            if which == 1:
                return 0
            on_held(lock)
            which, _ = await first_of(lock.lost.wait(), signals.received.get())
            return EXIT_LOCK_LOST if which == 0 else 0
        finally:
            await lock.release()


async def _supervise(
    process: asyncio.subprocess.Process,
    lock: Lock,
    signals: Signals,
    report: Callable[[str], None],
) -> int:
    while True:
        which, received = await first_of(process.wait(), signals.received.get(), lock.lost.wait())
        if which == 0 or process.returncode is not None:
            return exit_code(process.returncode or 0)
        if which == 1:  # a signal for the command
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(cast(int, received))
            continue
        report(f"lock lost: {lock.lost_reason}; stopping the command")
        await terminate(process, lock.grace)
        return EXIT_LOCK_LOST
