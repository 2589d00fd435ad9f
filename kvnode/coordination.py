"""Locks and leader election, built on the client from leases and transactions only (no
server-side lock code), the way etcd's concurrency package builds them.

A contender grants a lease, creates `<prefix><lease id>` attached to it (a
transaction that only creates), and holds the lock once its key has the
lowest create_revision under the prefix; until then it watches the key just
ahead of it. The create_revision is the fencing token: later holders always
have larger ones. The lease is kept alive in the background; if the holder
dies, its key goes with its lease and the next contender proceeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from kvnode.client import Client, KvError, NotFound
from kvnode.contract import value_fields

log = logging.getLogger(__name__)

LOCKS_PREFIX = "locks/"
ELECTIONS_PREFIX = "elections/"
KEEPALIVE_FRACTION = 3  # keep a lease alive every ttl/3


class LockLost(Exception):
    """The lock's lease expired or was revoked while it was held."""


class Lock:
    def __init__(self, client: Client, prefix: str, ttl: float, value: bytes = b"") -> None:
        self._client = client
        self.prefix = prefix
        self.ttl = ttl
        self.value = value
        self.key = ""
        self.lease_id = 0
        self.fencing_token = 0
        self.lost = asyncio.Event()
        self._keepalive: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.release()

    async def acquire(self) -> None:
        """Wait until this contender holds the lock."""
        lease = await self._client.lease_grant(self.ttl)
        self.lease_id = lease["id"]
        self._keepalive = asyncio.ensure_future(self._keep_alive())
        self.key = f"{self.prefix}{self.lease_id}"
        mine = value_fields(self.value)
        try:
            created = await self._client.txn(
                compare=[{"key": self.key, "target": "create_revision", "op": "==", "value": 0}],
                success=[{"put": {"key": self.key, "lease": self.lease_id, **mine}}],
                failure=[{"get": {"key": self.key}}],
            )
            self.fencing_token = (
                created["revision"]
                if created["succeeded"]
                else created["responses"][0]["get"]["create_revision"]
            )
            await self._wait_for_predecessors()
        except BaseException:
            await self.release()
            raise

    async def _wait_for_predecessors(self) -> None:
        while True:
            items, index = await self._client.list_with_index(self.prefix, limit=100_000)
            ahead = [i for i in items if i["create_revision"] < self.fencing_token]
            if not ahead:
                return
            predecessor = max(ahead, key=lambda item: item["create_revision"])["key"]
            async for event in self._client.watch(predecessor, from_revision=index + 1):
                if event.type in ("delete", "expire"):
                    break

    async def _keep_alive(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.ttl / KEEPALIVE_FRACTION)
                await self._client.lease_keepalive(self.lease_id)
        except NotFound:
            log.warning("lock %s lost: its lease %d is gone", self.key, self.lease_id)
            self.lost.set()
        except KvError as exc:
            log.warning("lock %s: cannot keep its lease alive: %s", self.key, exc)
            self.lost.set()

    async def release(self) -> None:
        """Give the lock up (revoke the lease, which deletes the key)."""
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        if self.lease_id:
            with contextlib.suppress(NotFound):
                await self._client.lease_revoke(self.lease_id)
            self.lease_id = 0


def election(client: Client, name: str, value: bytes, ttl: float = 10.0) -> Lock:
    """A campaign: the contender whose lock is held is the leader, `value` says who it is."""
    return Lock(client, f"{ELECTIONS_PREFIX}{name}/", ttl, value)


async def observe(client: Client, name: str) -> AsyncIterator[dict[str, Any]]:
    """Each new leader of election `name` (its key, value and create_revision), as it
    changes; the current one first, if there is one."""
    prefix = f"{ELECTIONS_PREFIX}{name}/"
    shown: str | None = None
    while True:
        items, index = await client.list_with_index(prefix, limit=100_000, values=True)
        if items:
            leader = min(items, key=lambda item: item["create_revision"])
            if leader["key"] != shown:
                shown = leader["key"]
                yield leader
        async for _event in client.watch(prefix=prefix, from_revision=index + 1):
            break  # something changed: look again
