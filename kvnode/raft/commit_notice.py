"""When a leader tells its followers a new commit index: at once if one of them waits for
it, otherwise within `COMMIT_NOTICE_DELAY`, unless an append-entries message carried it
there first.

A follower learns the commit index only from the leader's append-entries messages, and
applies (and answers the clients waiting on it) only up to it. kvnode used to send every
follower an empty append-entries message after each commit. At one client connection that
doubled a write's messages: the leader sent four and read four answers, each follower read
and answered two, and the notice's extra tick held the GIL just when the event loop was
answering the client. With three nodes on two cores, where a write at one connection costs
more CPU than its latency, waiting for a carrier instead cut the leader's Raft thread from
830-930 to 590-680 µs a write and each follower's from 490-600 to 350-420, and the median
latency from 1.8-2.0 to 1.4-1.7 ms (docs/benchmarks.md).

Under load the next write's append-entries goes out within a millisecond or so and carries
the commit index anyway, so the notice waits `COMMIT_NOTICE_DELAY` for such a carrier and is
sent only if none came. A follower that waits for a particular commit is told at once: one
that forwarded a write (its client is answered when the follower applies it), or one that
was given a read index (its reader waits until it has applied that far). Everything else a
follower serves from what it applied (watches, stale reads) lags the leader by at most the
delay. Safety does not depend on any of this: a commit index is only ever news.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

COMMIT_NOTICE_DELAY = 0.002  # seconds an untold commit index waits for a message to carry it


class CommitNotice:
    """The leader's record of which commit index each follower was sent (tick thread)."""

    def __init__(self, delay: float = COMMIT_NOTICE_DELAY) -> None:
        self.delay = delay
        self._told: dict[Any, int] = {}  # follower -> the highest commit index sent to it
        # follower -> a commit it waits for (to apply), always beyond what it was told
        self._awaited: dict[Any, int] = {}
        self._covered = 0  # every commit index up to this one was sent, or a notice asked
        # (commit index, when this leader first had it) not yet told to every follower
        self._untold: collections.deque[tuple[int, float]] = collections.deque()

    def told(self, follower: Any, commit_index: int) -> None:
        """A message carrying `commit_index` went to `follower`."""
        if commit_index > self._told.get(follower, 0):
            self._told[follower] = commit_index
        if self._awaited.get(follower, commit_index + 1) <= commit_index:
            del self._awaited[follower]  # it has what it waited for

    def awaited_by(self, follower: Any, index: int) -> None:
        """`follower` waits until it has applied `index`: tell it as soon as it is committed."""
        if index > max(self._awaited.get(follower, 0), self._told.get(follower, 0)):
            self._awaited[follower] = index

    def forget(self, follower: Any) -> None:
        """A follower disconnected: what it was told is known again only from new messages."""
        self._told.pop(follower, None)
        self._awaited.pop(follower, None)

    def start_leading(self) -> None:
        """This node has just become leader: what it told followers or knew they awaited
        when it led before is no longer news (a follower may have restarted since)."""
        self._told.clear()
        self._awaited.clear()
        self._covered = 0
        self._untold.clear()

    def due(self, commit_index: int, followers: Iterable[Any], now: float) -> bool:
        """Whether the followers must be sent the commit index now (then it counts as sent)."""
        everyone_told = min((self._told.get(f, 0) for f in followers), default=commit_index)
        self._covered = max(self._covered, everyone_told)
        untold = self._untold
        while untold and untold[0][0] <= self._covered:
            untold.popleft()
        if commit_index > (untold[-1][0] if untold else self._covered):
            untold.append((commit_index, now))
        if not untold:
            return False
        if now - untold[0][1] < self.delay and not self._awaited_now(commit_index):
            return False
        self._covered = commit_index
        untold.clear()
        self._awaited = {f: index for f, index in self._awaited.items() if index > commit_index}
        return True

    def wait_at_most(self, last_index: int) -> float | None:
        """How long the tick may sleep: at most the delay while an entry up to `last_index`
        may be committed, or is, and not yet told (None: as long as it likes)."""
        if self._untold or last_index > self._covered:
            return self.delay
        return None

    def _awaited_now(self, commit_index: int) -> bool:
        return any(index <= commit_index for index in self._awaited.values())
