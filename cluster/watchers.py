"""The chaos watcher workload: clients that watch the whole chaos key space while the
nemesis runs, each starting on a different node and following the cluster through every
fault (`Client.watch` resumes elsewhere). Each stops when it sees the end marker, a key
written after the faults are healed, so every watcher covers the same window."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from kvnode.client import Client, KvError

PREFIX = "chaos/"
END_MARKER = "chaos/~watch-end"


@dataclass
class WatcherLog:
    """What one watcher received: (revision, type, key, value) in arrival order."""

    name: str
    events: list[tuple[int, str, str, str | None]] = field(default_factory=list)
    nodes: set[str] = field(default_factory=set)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "events": [list(event) for event in self.events],
            "nodes": sorted(self.nodes),
            "error": self.error,
        }


class Watchers:
    def __init__(self, endpoints: list[str], count: int, token: str | None) -> None:
        self._endpoints = endpoints
        self._token = token
        self.logs = [WatcherLog(f"w{i}") for i in range(count)]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, from_revision: int) -> None:
        for i, log in enumerate(self.logs):
            order = (
                self._endpoints[i % len(self._endpoints) :]
                + self._endpoints[: i % len(self._endpoints)]
            )
            self._tasks.append(asyncio.ensure_future(self._follow(order, from_revision, log)))

    async def _follow(self, endpoints: list[str], from_revision: int, log: WatcherLog) -> None:
        async with Client(endpoints, timeout=5, token=self._token, write_deadline=120) as client:
            try:
                async for event in client.watch(prefix=PREFIX, from_revision=from_revision):
                    value = event.value.decode() if event.value is not None else None
                    log.events.append((event.revision, event.type, event.key, value))
                    log.nodes.add(event.node)
                    if event.key == END_MARKER:
                        return
            except KvError as exc:
                log.error = str(exc)

    async def finish(self, timeout: float) -> None:
        """Wait for every watcher to reach the end marker; one that cannot is recorded."""
        if not self._tasks:  # a run with --watchers 0
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task, log in zip(self._tasks, self.logs, strict=True):
            if task in pending and log.error is None:
                log.error = f"did not reach the end marker within {timeout:g} s"
