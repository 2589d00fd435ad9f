"""The state machine's lock, which lets a waiting read in between the slices of an apply.

Two kinds of thread use the state: the Raft thread applies committed entries
(one entry can be a batch of 256 writes, or a transaction of many), and the
event loop reads keys for every GET. With a plain mutex a read waits behind
the whole batch and, worse, behind the next ones too: CPython's lock is not
fair, so the applying thread, which still holds the GIL when it releases the
lock, takes it straight back, and the woken reader finds it held again
(docs/benchmarks.md has the measurement: a p99 read wait of 100 ms, 300 ms at
worst, with entries applied back to back).

Here a reader that finds the state busy says so; the applier calls
`let_readers_in` between slices of its work (and before each entry), and when
a reader waits it steps aside until that reader holds the state. Every state a
reader sees this way is one the log passed through: a batch's commands apply
one after the other, each at its own revision.

What must see the state between two whole entries (a backup's capture, the
digest, a snapshot) takes the lock with `for_changes`, as the applier does; the
applier keeps its turn while it lets readers in, so those never see half an
entry.

A forked child (a background checkpoint, a Raft snapshot) starts with fresh locks:
the threads that held them at the fork do not exist in it, and only the forking
thread, the applier, ever changes the state.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator

HANDOFF_LIMIT_SECONDS = 0.05
"""How long the applier waits for waiting readers to take the state before it goes on
anyway; a reader holds it for microseconds, so this bounds only a misbehaving one."""


_every_lock: weakref.WeakSet[StateLock] = weakref.WeakSet()


class StateLock:
    def __init__(self) -> None:
        self._reset()
        _every_lock.add(self)

    def _reset(self) -> None:
        self._turn = threading.Lock()  # the applier's (or a whole-state reader's) turn
        self._state = threading.Lock()  # whoever touches the state right now
        self._waiting_guard = threading.Lock()
        self._readers_in = threading.Condition(self._waiting_guard)
        self._waiting = 0  # readers blocked on `_state`

    @contextlib.contextmanager
    def for_reads(self) -> Iterator[None]:
        """Hold the state to read it; may fall between two slices of an applied entry."""
        self.hold_for_read()
        try:
            yield
        finally:
            self.release_read()

    def hold_for_read(self) -> None:
        """`for_reads` without a context manager, for a single-key read (a GET's path,
        where the generator would cost more than the read): `release_read` after it."""
        if not self._state.acquire(blocking=False):
            with self._waiting_guard:
                self._waiting += 1
            self._state.acquire()
            with self._waiting_guard:
                self._waiting -= 1
                if not self._waiting:
                    self._readers_in.notify_all()

    def release_read(self) -> None:
        self._state.release()

    @contextlib.contextmanager
    def for_changes(self) -> Iterator[None]:
        """Hold the state between whole entries: to apply one, or to read all of it at once.
        Readers already waiting go first."""
        with self._turn:
            self._state.acquire()
            try:
                self.let_readers_in()
                yield
            finally:
                self._state.release()

    def let_readers_in(self) -> None:
        """Called by the holder of `for_changes`: if readers wait, step aside until they
        hold the state, then take it back (after them)."""
        if not self._waiting:  # read without the guard: a reader missed now waits one slice
            return
        self._state.release()
        try:
            with self._waiting_guard:
                self._readers_in.wait_for(lambda: not self._waiting, HANDOFF_LIMIT_SECONDS)
        finally:
            self._state.acquire()


def _reset_in_child() -> None:
    for lock in list(_every_lock):
        lock._reset()


os.register_at_fork(after_in_child=_reset_in_child)
