"""Locks and leader election, built on the client from leases and transactions only (no
server-side lock code), the way etcd's concurrency package builds them.

A contender grants a lease, creates `<prefix><lease id>` attached to it (a
transaction that only creates), and holds the lock once its key has the
lowest create_revision under the prefix; until then it watches the key just
ahead of it. The create_revision is the fencing token: later holders always
have larger ones. If the holder dies, its key goes with its lease and the next
contender proceeds.

Mutual exclusion without fencing rests on two rules:

- A waiter treats itself as first only when, after its last wait, its own key is
  still there and a keepalive has just renewed its lease. A waiter whose lease ran
  out while it waited (a paused client, a paused endpoint) has lost its place: its
  key is gone and a later contender may hold the lock. It starts over with a new
  lease instead of proceeding (etcd's Mutex fails with "session key lost" there).
- A holder knows how long its lease is certainly alive: a ttl from the moment it
  *sent* its last successful keepalive (the cluster renewed it later than that).
  `lost` is set `grace` seconds before that deadline if no renewal has succeeded
  since, or at once when the cluster says the lease is gone; a holder that stops
  its work then stops before anyone else can hold the lock.

Renewals come every third of `ttl - grace`, and every request made on a lease's behalf
gives each endpoint at most as long (`KvClient.bounded`), so a renewal whose endpoint is
paused still succeeds at the next one in time: one paused node cannot cost a live
client its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from kvnode.client.errors import KvError, NotFound, WatchCompacted
from kvnode.client.kv import KeyItem, KvClient
from kvnode.contract import value_fields

log = logging.getLogger(__name__)

LOCKS_PREFIX = "locks/"
ELECTIONS_PREFIX = "elections/"
KEEPALIVE_FRACTION = 3  # renewals per lease lifetime (see Lock.renew_interval)
RENEW_RETRY_SECONDS = 0.1  # after a failed renewal, try again this soon


class LockLost(Exception):
    """The lease behind a lock or a place in its queue expired, was revoked, or can no
    longer be vouched for."""


class Lock:
    """A lock (or an election campaign) under `prefix`; see the module docstring.

    `lost` is an asyncio.Event a holder can await beside its work::

        async with client.lock("nightly", ttl=10) as lock:
            work = asyncio.create_task(run_job(lock.fencing_token))
            lost = asyncio.create_task(lock.lost.wait())
            done, _ = await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost in done:
                work.cancel()  # stop before the lease can expire and another holder starts
    """

    def __init__(
        self,
        client: KvClient,
        prefix: str,
        ttl: float,
        value: bytes = b"",
        *,
        grace: float | None = None,
    ) -> None:
        self.prefix = prefix
        self.ttl = ttl
        self.value = value
        # Seconds before the lease could expire that `lost` is set: room to stop the work.
        self.grace = ttl / KEEPALIVE_FRACTION if grace is None else grace
        if not 0 < self.grace < ttl:
            raise ValueError(f"grace must be between 0 and the ttl ({ttl:g} s)")
        # Renewals come every third of the time the lease is certainly alive before `lost`
        # would be set, and each attempt at one endpoint gets as long: a renewal that
        # finds its endpoint paused has time to succeed at the next one.
        self.renew_interval = (ttl - self.grace) / KEEPALIVE_FRACTION
        self._client = client.bounded(self.renew_interval)
        self.key = ""
        self.lease_id = 0
        self.fencing_token = 0
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self.valid_until = 0.0  # time.monotonic() until which the lease is certainly alive
        self._holding = asyncio.Event()  # set once held: only a holder has a deadline to keep
        self._keepalive: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.release()

    async def acquire(self) -> None:
        """Wait until this contender holds the lock. A place in the queue lost while
        waiting (the lease expired) is taken again with a new lease."""
        while True:
            try:
                await self._contend()
                return
            except LockLost as exc:
                log.warning(
                    "lock %s: %s while waiting; starting over with a new lease", self.key, exc
                )
                await self.release()
            except BaseException:
                await self.release()
                raise

    async def _contend(self) -> None:
        sent = time.monotonic()
        lease = await self._client.lease_grant(self.ttl)
        self.lease_id = lease["id"]
        self.valid_until = sent + self.ttl
        self.lost.clear()
        self._holding.clear()
        self.lost_reason = ""
        self._keepalive = asyncio.ensure_future(self._keep_alive())
        self.key = f"{self.prefix}{self.lease_id}"
        created = await self._client.txn(
            compare=[{"key": self.key, "target": "create_revision", "op": "==", "value": 0}],
            success=[
                {"put": {"key": self.key, "lease": self.lease_id, **value_fields(self.value)}}
            ],
            failure=[{"get": {"key": self.key}}],
        )
        self.fencing_token = (
            created["revision"]
            if created["succeeded"]
            else created["responses"][0]["get"]["create_revision"]
        )
        log.info("lock %s: queued (token %d)", self.key, self.fencing_token)
        await self._wait_for_predecessors()
        log.info("lock %s: held (token %d)", self.key, self.fencing_token)

    async def _wait_for_predecessors(self) -> None:
        while True:
            self._check_not_lost()
            items, index = await self._client.list_with_index(self.prefix, limit=100_000)
            if not any(item.key == self.key for item in items):
                raise LockLost("its key is gone (session key lost)")
            ahead = [item for item in items if item.create_revision < self.fencing_token]
            if not ahead:
                await self._renew_before_holding()
                return
            predecessor = max(ahead, key=lambda item: item.create_revision).key
            await self._until_deleted(predecessor, index + 1)

    async def _renew_before_holding(self) -> None:
        """The last step before holding: the lease is alive now, for a whole ttl."""
        while True:
            self._check_not_lost()
            sent = time.monotonic()
            try:
                await self._client.lease_keepalive(self.lease_id, once=True)
                break
            except NotFound:
                raise LockLost("its lease is gone") from None
            except KvError as exc:
                log.info("lock %s: renewing its lease failed (%s); trying again", self.key, exc)
                await asyncio.sleep(RENEW_RETRY_SECONDS)
        self.valid_until = max(self.valid_until, sent + self.ttl)
        self._holding.set()

    async def _until_deleted(self, key: str, from_revision: int) -> None:
        """Wait for `key` to be deleted or expire, or for this contender's lease to be lost."""

        async def deleted() -> None:
            with contextlib.suppress(WatchCompacted):  # too old to watch from: look again
                async for event in self._client.watch(key, from_revision=from_revision):
                    if event.type in ("delete", "expire"):
                        return

        watching = asyncio.ensure_future(deleted())
        losing = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({watching, losing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watching, losing):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # a watch that failed raises its error here

    def _check_not_lost(self) -> None:
        if self.lost.is_set():
            raise LockLost(self.lost_reason)

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            log.warning("lock %s lost: %s", self.key, reason)
            self.lost.set()

    async def _keep_alive(self) -> None:
        """Renew the lease; set `lost` when the cluster says it is gone, or, once held, when
        `grace` seconds are left of the time it is certainly alive. (A waiter keeps
        renewing until told its lease is gone: it has nothing to stop in time.)"""
        renewing = asyncio.ensure_future(self._renew_periodically())
        try:
            await self._holding.wait()
            while not self.lost.is_set():
                left = self.valid_until - self.grace - time.monotonic()
                if left <= 0:
                    self._lose(f"its lease could not be renewed; it may expire in {self.grace:g} s")
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.lost.wait(), left)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew_periodically(self) -> None:
        interval = self.renew_interval
        delay = interval
        while True:
            await asyncio.sleep(delay)
            sent = time.monotonic()
            try:
                await self._client.lease_keepalive(self.lease_id, once=True)
            except NotFound:
                self._lose("its lease is gone (expired or revoked)")
                return
            except KvError as exc:
                log.info("lock %s: renewing its lease failed (%s); trying again", self.key, exc)
                delay = RENEW_RETRY_SECONDS
                continue
            self.valid_until = max(self.valid_until, sent + self.ttl)
            delay = interval

    async def release(self) -> None:
        """Give the lock up (revoke the lease, which deletes the key). Bounded by the ttl:
        a lease that cannot be revoked expires by then anyway."""
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        if self.lease_id:
            with contextlib.suppress(NotFound, KvError, TimeoutError):
                await asyncio.wait_for(self._client.lease_revoke(self.lease_id), self.ttl)
            self.lease_id = 0


def election(
    client: KvClient, name: str, value: bytes, ttl: float = 10.0, grace: float | None = None
) -> Lock:
    """A campaign: the contender whose lock is held is the leader, `value` says who it is."""
    return Lock(client, f"{ELECTIONS_PREFIX}{name}/", ttl, value, grace=grace)


async def observe(client: KvClient, name: str) -> AsyncIterator[KeyItem]:
    """Each new leader of election `name` (its key, value and create_revision), as it
    changes; the current one first, if there is one."""
    prefix = f"{ELECTIONS_PREFIX}{name}/"
    shown: str | None = None
    while True:
        items, index = await client.list_with_index(prefix, limit=100_000, values=True)
        if items:
            leader = min(items, key=lambda item: item.create_revision)
            if leader.key != shown:
                shown = leader.key
                yield leader
        async for _event in client.watch(prefix=prefix, from_revision=index + 1):
            break  # something changed: look again
