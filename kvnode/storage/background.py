"""Work done in a forked child, on a copy-on-write view of the parent's memory (like
Redis' BGSAVE): a checkpoint or a snapshot of a large state without holding up the
thread that applies entries and sends heartbeats.

The parent only pays for the fork (page tables: milliseconds for hundreds of MB).
The child writes its file and exits with `os._exit`, touching nothing the parent's
other threads might have locked at fork time (no logging, no locks): it encodes an
immutable view and writes with plain system calls. Memory can grow up to twofold
while it runs, as pages the parent changes are copied.

The child runs at the lowest CPU priority (`settle_in_child`): encoding millions
of keys keeps a core busy for seconds, and on a small machine (every node's child
at once, on two cores) the parent's tick thread waited for a core behind them:
heartbeats 50-200 ms late. It also closes every socket it inherited: a child still
writing when its node was killed would otherwise hold the node's HTTP and Raft
ports, and the node restarted at once could not listen on them ("Address already
in use"). The data directory's lock it keeps (dir_lock.py: the restart waits for it).
"""

from __future__ import annotations

import os
import stat
import time
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_FAILED = 1
LOWEST_PRIORITY = 19  # nice(2): the largest increment that matters


class ForkTimes:
    """How long this process's forks held it up, like Redis' `latest_fork_usec`: a fork
    copies the page tables of the whole state with the GIL held, so every thread,
    heartbeats included, waits for it. Any fork counts (PySyncObj forks its own)."""

    def __init__(self) -> None:
        self.latest = 0.0
        self.longest = 0.0
        self._started = 0.0

    def before(self) -> None:
        self._started = time.perf_counter()

    def after_in_parent(self) -> None:
        self.latest = time.perf_counter() - self._started
        self.longest = max(self.longest, self.latest)


FORK_TIMES = ForkTimes()
os.register_at_fork(before=FORK_TIMES.before, after_in_parent=FORK_TIMES.after_in_parent)


def settle_in_child() -> None:
    """First thing in a forked child: let every normal-priority thread (the nodes') run
    first, and let go of the parent's sockets."""
    os.nice(LOWEST_PRIORITY)
    close_inherited_sockets()


def close_inherited_sockets() -> None:
    """Close this process's socket descriptors (listening ones included); the parent's
    copies stay open. Files are left alone: the child writes its own."""
    for name in os.listdir("/proc/self/fd"):
        descriptor = int(name)
        try:
            if stat.S_ISSOCK(os.fstat(descriptor).st_mode):
                os.close(descriptor)
        except OSError:
            pass  # the directory's own descriptor, gone by now


class ForkedTask:
    """At most one child at a time; the parent polls it (never blocks unless asked)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid = 0
        self._started_at = 0.0
        self.last_seconds = 0.0  # how long the last child ran (as seen by the polling)

    @property
    def running(self) -> bool:
        return self.pid != 0

    def start(self, work: Callable[[], object]) -> None:
        """Run `work()` in a child process; returns at once in the parent."""
        assert not self.running, f"{self.name} is already running"
        started = time.monotonic()
        pid = os.fork()
        if pid:
            self.pid, self._started_at = pid, started
            return
        try:  # the child: write, then leave without running any of the parent's cleanup
            settle_in_child()
            work()
        except BaseException:
            os.write(2, f"{self.name} failed in pid {os.getpid()}:\n".encode())
            os.write(2, traceback.format_exc().encode())
            os._exit(EXIT_FAILED)
        os._exit(EXIT_OK)

    def finished(self, *, block: bool = False) -> bool | None:
        """None while the child runs; True if it succeeded, False if it failed (or died)."""
        if not self.running:
            return None
        pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return None
        self.pid = 0
        self.last_seconds = time.monotonic() - self._started_at
        return os.waitstatus_to_exitcode(status) == EXIT_OK
