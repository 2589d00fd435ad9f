"""Who leads, over a chaos run: the nodes' /status polled a few times a second, each
change of leader (or of term) logged with its time, for the report's timeline.

It is an observer's view: a leader elected and deposed between two polls is not seen,
and a node that cannot be reached does not vote. The checker never reads it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kvnode.client import Client

from .supervisor import LocalCluster

POLL_SECONDS = 0.2


class LeaderLog:
    """Polls `cluster` until `run`'s deadline; `changes` holds {"at", "node", "term"}
    (monotonic seconds, as the history's), with node None while no leader is seen."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.changes: list[dict[str, Any]] = []

    async def run(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        async with Client(self.cluster.urls, timeout=1, token=self.cluster.token) as client:
            while time.monotonic() < deadline:
                self._saw(*await self._leader(client))
                await asyncio.sleep(POLL_SECONDS)

    async def _leader(self, client: Client) -> tuple[str | None, int | None]:
        """The node that says it leads in the highest term, among those that answer."""
        statuses = await self.cluster.statuses(client)
        leaders = [s for s in statuses.values() if s["role"] == "leader"]
        if not leaders:
            return None, None
        newest = max(leaders, key=lambda status: status["term"])
        return newest["node_id"], newest["term"]

    def _saw(self, node: str | None, term: int | None) -> None:
        last = self.changes[-1] if self.changes else None
        if last is not None and last["node"] == node and (term is None or last["term"] == term):
            return
        self.changes.append({"at": time.monotonic(), "node": node, "term": term})
