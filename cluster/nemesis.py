"""The nemesis: faults injected into a running cluster on a seeded random schedule.

Faults are applied one at a time, each held for a random moment and then
healed; the run is bounded in time, and `heal_all` undoes whatever is left at
the end (restart killed nodes, resume paused ones, remove partitions).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kvnode.client import Client

from . import NEMESES
from .netns import Topology
from .supervisor import LocalCluster

HOLD_SECONDS = (0.5, 3.0)
GAP_SECONDS = (0.5, 2.0)
READY_TIMEOUT = 30.0


@dataclass
class Nemesis:
    cluster: LocalCluster
    faults: list[str]
    seed: int = 1
    topology: Topology | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(NEMESES)
        if unknown:
            raise ValueError(f"unknown nemesis {sorted(unknown)}; choose from {NEMESES}")
        if "partition" in self.faults and self.topology is None:
            raise ValueError("the partition nemesis needs a network-namespace topology")
        self._rng = random.Random(self.seed)

    async def run(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        async with Client(self.cluster.urls, timeout=2, token=self.cluster.token) as client:
            while time.monotonic() < deadline:
                await asyncio.sleep(self._rng.uniform(*GAP_SECONDS))
                if time.monotonic() >= deadline:
                    break
                fault = self._rng.choice(self.faults)
                await self._inject(fault, client, deadline)
                await self._wait_healthy(client)

    async def _leader(self, client: Client) -> int | None:
        try:
            return await self.cluster.wait_for_leader(client, timeout=5)
        except TimeoutError:
            return None

    async def _inject(self, fault: str, client: Client, deadline: float) -> None:
        size = self.cluster.size
        target = self._rng.randrange(size)
        if fault in ("kill-leader", "pause-leader") or (
            fault == "partition" and self._rng.random() < 0.5
        ):
            leader = await self._leader(client)
            target = leader if leader is not None else target
        hold = min(self._rng.uniform(*HOLD_SECONDS), max(0.0, deadline - time.monotonic()))
        entry = {"fault": fault, "node": self.cluster.nodes[target].node_id, "at": time.monotonic()}
        if fault in ("kill", "kill-leader"):
            self.cluster.kill(target)
            await asyncio.sleep(hold)
            self.cluster.start(target)
        elif fault in ("pause", "pause-leader"):
            self.cluster.pause(target)
            await asyncio.sleep(hold)
            self.cluster.resume(target)
        elif fault == "wipe":
            self.cluster.kill(target)
            self.cluster.wipe(target)
            await asyncio.sleep(hold)
            self.cluster.start(target)
        else:
            assert self.topology is not None
            others = [i for i in range(size) if i != target]
            if self._rng.random() < 0.5:
                self.topology.partition([[target], others])  # isolate one node, often the leader
                entry["kind"] = "isolate"
            else:  # a bridge: the target still sees both others, which cannot see each other
                self.topology.cut([(others[0], others[1])])
                entry["kind"] = "bridge"
            await asyncio.sleep(hold)
            self.topology.heal()
        entry["held"] = round(hold, 2)
        self.log.append(entry)
        self.counts[fault] += 1

    async def _wait_healthy(self, client: Client) -> None:
        try:
            await self.cluster.wait_for_leader(client, timeout=READY_TIMEOUT)
            await self.cluster.wait_until_ready(client, timeout=READY_TIMEOUT)
        except TimeoutError:
            self.log.append({"warning": "cluster not ready after healing", "at": time.monotonic()})

    def heal_all(self) -> None:
        if self.topology is not None:
            self.topology.heal()
        for index, node in enumerate(self.cluster.nodes):
            if node.paused:
                self.cluster.resume(index)
            if not node.running:
                self.cluster.start(index)
