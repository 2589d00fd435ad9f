"""The chaos workload: concurrent clients on a small key set, every operation recorded.

Keys are few so operations conflict; every written value is unique
(`<process>-<n>`) so each read can be traced to the write it saw; a share of
writes carries a short TTL (on their own keys). Clients do not retry: an
indeterminate answer is recorded as such, and that is what the checker needs.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from kvnode.client import Client, CompareFailed, Indeterminate, KvError, NotFound, Unavailable

from .history import FAIL, INFO, OK, Op

REQUEST_TIMEOUT = 5.0
KEYS = [f"chaos/k{i}" for i in range(6)]
TTL_KEYS = [f"chaos/ttl{i}" for i in range(2)]
TTL_SECONDS = (0.5, 1.0, 2.0)


@dataclass
class Workload:
    endpoints: list[str]
    clients: int = 10
    rate: float = 20.0  # operations per second per client
    seed: int = 1
    token: str | None = None
    history: list[Op] = field(default_factory=list)
    _next_id: int = 0

    def _op(self, process: int, kind: str, key: str, **fields: object) -> Op:
        self._next_id += 1
        op = Op(id=self._next_id, process=process, kind=kind, key=key, **fields)  # type: ignore[arg-type]
        self.history.append(op)
        return op

    async def run(self, duration: float) -> list[Op]:
        deadline = time.monotonic() + duration
        async with Client(
            self.endpoints, timeout=REQUEST_TIMEOUT, retry_writes=False, token=self.token
        ) as client:
            await asyncio.gather(
                *(self._client(client, process, deadline) for process in range(self.clients))
            )
        return self.history

    async def _client(self, client: Client, process: int, deadline: float) -> None:
        rng = random.Random(self.seed * 7919 + process)
        endpoint = process % len(self.endpoints)
        written = 0
        seen: dict[str, str | None] = {}
        while time.monotonic() < deadline:
            started = time.monotonic()
            roll = rng.random()
            if roll < 0.1:
                key = rng.choice(TTL_KEYS)
                if rng.random() < 0.5:
                    written += 1
                    ttl = rng.choice(TTL_SECONDS)
                    op = self._op(process, "put", key, value=f"{process}-{written}", ttl=ttl)
                else:
                    op = self._op(process, "get", key)
            else:
                key = rng.choice(KEYS)
                if roll < 0.45:
                    written += 1
                    op = self._op(process, "put", key, value=f"{process}-{written}")
                elif roll < 0.75:
                    op = self._op(process, "get", key)
                elif roll < 0.9:
                    written += 1
                    prev = seen.get(key) or f"{process}-{max(1, written - 1)}"
                    op = self._op(process, "cas", key, value=f"{process}-{written}", prev=prev)
                else:
                    op = self._op(process, "delete", key)
            url = self.endpoints[endpoint]
            if not await self._execute(client, op, url):
                endpoint = (endpoint + 1) % len(self.endpoints)  # try another node next time
            if op.kind == "get" and op.outcome == OK:
                seen[key] = op.value
            pause = 1 / self.rate - (time.monotonic() - started)
            if pause > 0:
                await asyncio.sleep(rng.uniform(0, 2 * pause))

    async def _execute(self, client: Client, op: Op, url: str) -> bool:
        """Run one operation and record its outcome; False when the node did not answer."""
        op.invoke = time.monotonic()
        wall = time.time()
        try:
            if op.kind == "get":
                found = await client.get(op.key, endpoint=url)
                op.value = found.value.decode() if found is not None else None
            elif op.kind == "delete":
                try:
                    op.revision = await client.delete(op.key, endpoint=url)
                    op.result = "applied"
                except NotFound:
                    op.result = "not_found"
            else:
                if op.value is None:
                    raise ValueError(f"a {op.kind} needs a value to write")
                prev = op.prev.encode() if op.kind == "cas" and op.prev is not None else None
                try:
                    result = await client.put(
                        op.key, op.value.encode(), ttl=op.ttl, prev_value=prev, endpoint=url
                    )
                    op.result, op.revision = "applied", result.revision
                    if result.expire_at:
                        op.expire_at = op.invoke + (result.expire_at / 1000 - wall)
                except CompareFailed:
                    op.result = "compare_failed"
            op.outcome = OK
            op.complete = time.monotonic()
            return True
        except Indeterminate as exc:
            op.outcome, op.error = INFO, exc.code
            return False
        except KvError as exc:
            op.error = exc.code
            if isinstance(exc, Unavailable) or 400 <= exc.status < 500:
                op.outcome = FAIL
                op.complete = time.monotonic()
            else:  # a 500 says nothing about whether the write was applied
                op.outcome = INFO
            return False
