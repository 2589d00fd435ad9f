"""Lock contenders under faults of their own, beside the node nemesis of a chaos run.

Each of `contenders` slots runs `kvnode lock --verbose` again and again, holding
the lock for a random moment each time (cluster/locks.py records every critical
section). Meanwhile the client nemesis, on a seeded schedule:

- `pause-waiter`: SIGSTOPs a contender that waits at least second in line (so
  it cannot be about to hold the lock) for longer than the lease's ttl, then
  SIGCONTs it: it must start over, not run out of turn;
- `term`: SIGTERMs a contender, waiting or holding: its command must stop and the
  lock be freed;
- `kill`: SIGKILLs a contender: its command dies with it (parent-death signal),
  and the lock is free once its lease expires.

A holder is never paused: a stopped process cannot stop its command, and only
fencing can make that safe (see the README on locks).

Every kind of client fault happens in a run: if one has not yet (a waiter far enough
back to pause is rare on a busy machine, where each `kvnode lock` takes a while to
start), the client nemesis and the contenders go on past the run's duration until it
has, for at most COVERAGE_GRACE_SECONDS.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kvnode.client import Client
from kvnode.client.coordination import LOCKS_PREFIX

from .locks import (
    SECTIONS_LOG,
    Contender,
    check_sections,
    holder_command,
    read_sections,
    write_holder_script,
)
from .supervisor import LocalCluster

LOCK_NAME = "chaos"
LOCK_TTL = 3.0
HOLD_MS = (50, 400)
CLIENT_FAULTS = ("pause-waiter", "term", "kill")
FAULT_GAP_SECONDS = (0.5, 2.0)
PAUSE_PAST_TTL = 1.5  # a paused waiter stays stopped this many ttls
QUEUED = re.compile(r"lock (\S+): queued")
EXIT_POLL_SECONDS = 0.05
WAITER_LOOK_SECONDS = 0.1  # between looks for a waiter to pause
DRAIN_SECONDS = 60.0  # after the run, how long the last contenders may wait for their turn
COVERAGE_GRACE_SECONDS = 60.0  # at most this long past the run for a fault kind not yet made


class LockChaos:
    def __init__(self, cluster: LocalCluster, directory: Path, contenders: int, seed: int) -> None:
        self.cluster = cluster
        self.directory = directory
        self.slots: list[Contender | None] = [None] * contenders
        self.runs = 0
        self.exits: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.fault_log: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._faults_over = asyncio.Event()  # contenders start no new run once it is set
        directory.mkdir(parents=True, exist_ok=True)
        write_holder_script(directory)

    async def run(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        slots = [self._keep_contending(i, deadline) for i in range(len(self.slots))]
        await asyncio.gather(*slots, self._client_nemesis(deadline))

    def _start(self, slot: int) -> Contender:
        self.runs += 1
        name = f"s{slot}r{self.runs}"
        hold = f"for:{self._rng.randint(*HOLD_MS)}"
        contender = Contender(
            name,
            LOCK_NAME,
            self.cluster.urls,
            self.directory,
            ttl=LOCK_TTL,
            command=holder_command(self.directory, name, hold),
            token=self.cluster.token,
            extra=("--verbose",),
        )
        self.slots[slot] = contender
        return contender

    async def _keep_contending(self, slot: int, deadline: float) -> None:
        """Contend again each time the last run ends, until `deadline`; then let the last
        run finish (every holder holds briefly), or stop it after DRAIN_SECONDS."""
        while not self._faults_over.is_set():
            contender = self._start(slot)
            drain_until = max(deadline, time.monotonic()) + DRAIN_SECONDS
            while (code := contender.process.poll()) is None:
                if time.monotonic() > drain_until:
                    contender.signal(signal.SIGTERM)  # forwarded: the command records its end
                    code = await asyncio.to_thread(contender.process.wait)
                    break
                await asyncio.sleep(EXIT_POLL_SECONDS)
            self.exits[code] += 1
        self.slots[slot] = None

    def _fault_plan(self) -> Iterator[str]:
        """Every kind of client fault once a round, in a random order: a short run still
        has each kind (drawing each fault at random, a run on a busy machine, where
        finding a waiter to pause takes a while, could end with only two faults)."""
        while True:
            yield from self._rng.sample(CLIENT_FAULTS, len(CLIENT_FAULTS))

    async def _client_nemesis(self, deadline: float) -> None:
        try:
            await self._inject_faults(deadline, deadline + COVERAGE_GRACE_SECONDS)
        finally:
            self._faults_over.set()

    async def _inject_faults(self, deadline: float, latest: float) -> None:
        """Faults until `deadline`, then only the kinds not made yet, until `latest`."""
        plan = self._fault_plan()
        while time.monotonic() < deadline or (self._kinds_missing() and time.monotonic() < latest):
            await asyncio.sleep(self._rng.uniform(*FAULT_GAP_SECONDS))
            fault = next(plan)
            if time.monotonic() >= deadline and self.faults[fault]:
                continue  # past the run: only what is still missing
            if fault == "pause-waiter":
                until = deadline if time.monotonic() < deadline else latest
                target = await self._waiter_to_pause(until)
                if target is None:
                    continue
                target.signal(signal.SIGSTOP)
                await asyncio.sleep(LOCK_TTL * PAUSE_PAST_TTL)
                target.signal(signal.SIGCONT)
            else:
                running = [c for c in self.slots if c is not None and c.process.poll() is None]
                if not running:
                    continue
                target = self._rng.choice(running)
                target.signal(signal.SIGTERM if fault == "term" else signal.SIGKILL)
            self.faults[fault] += 1
            self.fault_log.append(
                {"fault": fault, "contender": target.name, "at": time.monotonic()}
            )

    def _kinds_missing(self) -> bool:
        return any(not self.faults[kind] for kind in CLIENT_FAULTS)

    async def _waiter_to_pause(self, deadline: float) -> Contender | None:
        """Look until a waiter far enough back is found (the queue changes at every
        handover, and on a busy machine the first look often finds none) or the run ends."""
        while time.monotonic() < deadline:
            target = await self._waiter_behind_the_next()
            if target is not None:
                return target
            await asyncio.sleep(WAITER_LOOK_SECONDS)
        return None

    async def _waiter_behind_the_next(self) -> Contender | None:
        """A contender whose key is third or later in the queue: two handovers away from
        holding, so it cannot be about to run its command when it is stopped."""
        async with Client(self.cluster.urls, timeout=2, token=self.cluster.token) as client:
            try:
                queue = await client.list(f"{LOCKS_PREFIX}{LOCK_NAME}/", limit=1000)
            except Exception:
                return None
        behind = {item.key for item in sorted(queue, key=lambda i: i.create_revision)[2:]}
        for contender in self.slots:
            if contender is None or contender.process.poll() is not None:
                continue
            keys = QUEUED.findall(contender.stderr())
            if keys and keys[-1] in behind:
                return contender
        return None

    def stop(self) -> None:
        """Leave nothing running (after a failed run)."""
        for contender in self.slots:
            if contender is not None:
                contender.stop()

    def report(self) -> dict[str, Any]:
        verdict = check_sections(read_sections(self.directory / SECTIONS_LOG))
        return {
            **verdict,
            "contenders": len(self.slots),
            "runs": self.runs,
            "exits": {str(code): count for code, count in sorted(self.exits.items())},
            "faults": dict(self.faults),
            "fault_log": self.fault_log,
        }
