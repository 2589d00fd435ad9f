"""Waking PySyncObj's tick loop from another thread (a self-pipe in its poller).

PySyncObj's loop sleeps in `poll(autoTickPeriod)` and sends append-entries
only every `appendEntriesPeriod`, so a command proposed from the HTTP thread
would wait for the next period (~100 ms a write). Writing one byte to a pipe
that the poller watches makes the loop run at once; idle nodes still sleep.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from kvnode.raft.pysyncobj.adapter import POLL_READ


class Wakeup:
    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._subscribed = False

    def subscribe(self, poller: Any) -> None:
        """Register with the poller; must run in the tick thread (the poller is not thread-safe)."""
        if not self._subscribed:
            poller.subscribe(self._read_fd, self._drain, POLL_READ)
            self._subscribed = True

    def notify(self) -> None:
        """Make the next (or current) poll return now. Safe from any thread."""
        with contextlib.suppress(BlockingIOError):  # a full pipe already means "wake up"
            os.write(self._write_fd, b"!")

    def _drain(self, _descr: int, _event: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)
