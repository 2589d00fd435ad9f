"""Messages held back until the journal changes they acknowledge are on disk.

A follower's acknowledgement or a vote may leave only once what it vouches for
is durable (Raft's "persist before you reply"). The fsync runs in its own
thread (journal_sync.py), so such a message waits here with the journal
generation it depends on. Messages to a peer that has held ones queue behind
them whatever their kind, so each peer still receives this node's messages in
the order PySyncObj sent them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

Send = Callable[[Any, Any], object]


class Outbox:
    """Tick thread only."""

    def __init__(self) -> None:
        self._held: dict[Any, deque[tuple[int, Any]]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def holds_for(self, node: Any) -> bool:
        return node in self._held

    def hold(self, node: Any, generation: int, message: Any) -> None:
        """Keep `message` until the journal is synced up to `generation` (0: only behind
        the messages held before it)."""
        self._held.setdefault(node, deque()).append((generation, message))

    def release(self, synced_generation: int, send: Send) -> None:
        """Send, in order, every held message whose generation is on disk. A send may find
        the connection dead and drop the peer's queue (`drop`, from the disconnect
        callback) under this loop: what is left of it is then not sent."""
        for node, queue in list(self._held.items()):
            while queue and queue[0][0] <= synced_generation and self._held.get(node) is queue:
                send(node, queue.popleft()[1])
            if not queue and self._held.get(node) is queue:
                del self._held[node]

    def drop(self, node: Any) -> None:
        """The connection is gone: what it would have carried is stale by the next one."""
        self._held.pop(node, None)
