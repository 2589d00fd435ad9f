"""Hands newly applied changes to the watchers that want them (asyncio side).

Each watcher is a `Subscription` on one key or one prefix. A subscription
starts with the retained changes from its revision on and is then fed by
`WatchHub`, which reads the history once per batch of applies and gives each
change only to the watchers whose key or prefix it matches: a write wakes
the watchers of its key, not all of them.

Sequence numbers keep the start gap-free and duplicate-free: a new watcher
takes the history up to sequence S under the history's lock and then accepts
from the hub only changes at S and after.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from kvnode.storage.changes import Change
from kvnode.watch.history import Compacted, WatchHistory


class Batch(NamedTuple):
    """Changes for one watcher, and the revision up to which it now knows everything."""

    changes: list[Change]
    revision: int


class Subscription:
    """One watcher's queue. `ended` is set (to an error payload) when the watch cannot go
    on: its changes were compacted away, it fell too far behind, or the node stops."""

    def __init__(
        self, hub: WatchHub, key: str | None, prefix: str | None, from_revision: int
    ) -> None:
        self.key, self.prefix = key, prefix
        self.from_revision = from_revision
        self.from_seq = 0
        self.pending: list[Change] = []
        self.start_revision = 0  # the applied index when it subscribed
        self._hub = hub
        self.ended: dict[str, Any] | None = None
        self._wake = asyncio.Event()

    def matches(self, key: str) -> bool:
        if self.key is not None:
            return key == self.key
        return key.startswith(self.prefix or "")

    def push(self, change: Change) -> None:
        self.pending.append(change)
        self._wake.set()

    def end(self, error: str, message: str, **extra: Any) -> None:
        if self.ended is None:
            self.ended = {"type": "error", "error": error, "message": message, **extra}
            self._wake.set()

    def take(self) -> Batch:
        """What is queued now (possibly nothing) and the revision it brings the watcher to."""
        changes, self.pending = self.pending, []
        self._wake.clear()
        return Batch(changes, self.revision)

    @property
    def revision(self) -> int:
        """Every change up to this revision has been queued."""
        return max(self._hub.revision, self.start_revision)

    async def wait(self, timeout: float) -> None:
        """Until something is queued, the watch ended, or `timeout` seconds passed."""
        if self.pending or self.ended is not None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()


class WatchHub:
    def __init__(self, history: WatchHistory, max_pending: int) -> None:
        self._history = history
        self._max_pending = max_pending
        self._by_key: dict[str, set[Subscription]] = {}
        self._by_prefix: dict[str, set[Subscription]] = {}
        self._count = 0
        self._seq = 0  # the next history sequence number to hand out
        self.revision = 0  # the applied index at the last pump
        self.events_sent = 0  # handed to watchers since start (for /metrics)

    @property
    def watchers(self) -> int:
        return self._count

    def subscribe(
        self, *, key: str | None = None, prefix: str | None = None, from_revision: int | None
    ) -> Subscription:
        """A watcher of `key` (or every key under `prefix`) from `from_revision` on (None:
        from the next change), holding the retained changes since then. Raises Compacted if
        some are no longer kept."""
        if self._count == 0:
            self._start_listening()  # before reading, so that nothing falls in between
        try:
            read = self._history.since(from_revision)
        except Compacted:
            if self._count == 0:
                self._history.listen(None)
            raise
        start = read.applied + 1 if from_revision is None else from_revision
        subscription = Subscription(self, key, prefix, start)
        subscription.pending = [c for c in read.changes if subscription.matches(c.key)]
        subscription.from_seq = read.next_seq
        subscription.start_revision = read.applied
        index = self._by_key if key is not None else self._by_prefix
        index.setdefault(key if key is not None else prefix or "", set()).add(subscription)
        self._count += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        index, name = (
            (self._by_key, subscription.key)
            if subscription.key is not None
            else (self._by_prefix, subscription.prefix or "")
        )
        watchers = index.get(name)
        if watchers is None or subscription not in watchers:
            return
        watchers.discard(subscription)
        if not watchers:
            del index[name]
        self._count -= 1
        if self._count == 0:
            self._history.listen(None)

    def end_all(self, error: str, message: str) -> None:
        for subscription in list(self._all()):
            subscription.end(error, message)

    def _all(self) -> Iterator[Subscription]:
        for index in (self._by_key, self._by_prefix):
            for watchers in index.values():
                yield from watchers

    def _start_listening(self) -> None:
        loop = asyncio.get_running_loop()
        read = self._history.read(0)
        self._seq, self.revision = read.next_seq, read.applied  # nothing before is anyone's

        def from_applying_thread() -> None:
            loop.call_soon_threadsafe(self.pump)

        self._history.listen(from_applying_thread)

    def pump(self) -> None:
        """Hand every change applied since the last pump to the watchers it matches."""
        if self._count == 0:
            return
        read = self._history.read(self._seq)
        if read.first_seq > self._seq or read.floor > self.revision + 1:
            # Changes left the history (evicted, or a snapshot replaced the state) before
            # they were handed out.
            self._end_compacted(read.floor)
        seq = read.first_seq
        for change in read.changes:
            for subscription in self._matching(change.key):
                if seq >= subscription.from_seq and change.revision >= subscription.from_revision:
                    subscription.push(change)
                    self.events_sent += 1
                    if len(subscription.pending) > self._max_pending:
                        subscription.end(
                            "watcher_too_slow",
                            f"more than {self._max_pending} changes were waiting to be sent;"
                            " resume from the last revision received + 1",
                        )
            seq += 1
        self._seq = read.next_seq
        self.revision = read.applied

    def _matching(self, key: str) -> Iterator[Subscription]:
        exact = self._by_key.get(key)
        if exact:
            yield from list(exact)
        for prefix, watchers in self._by_prefix.items():
            if key.startswith(prefix):
                yield from list(watchers)

    def _end_compacted(self, floor: int) -> None:
        """Every watcher that had not got past the lost changes cannot continue gap-free."""
        for subscription in list(self._all()):
            if max(subscription.revision + 1, subscription.from_revision) < floor:
                subscription.end(
                    "revision_compacted",
                    f"changes before revision {floor} are no longer retained; list again",
                    oldest_revision=floor,
                )


__all__ = ["Batch", "Compacted", "Subscription", "WatchHub"]
