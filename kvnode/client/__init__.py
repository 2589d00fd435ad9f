"""kvnode's Python client: `Client` (async, aiohttp) and `SyncClient` (blocking).

    async with Client(["http://127.0.0.1:8001"]) as client:
        await client.put("k", b"v")
        async with client.lock("nightly", ttl=10) as lock: ...

The package is layered: `errors` (what the API answers), `kv` (`KvClient`:
every HTTP route, with retries and failover), `coordination` (locks and
elections, built from leases and transactions on a `KvClient`), and here
`Client`, which is a `KvClient` that also hands out locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

from kvnode.client import errors
from kvnode.client.coordination import LOCKS_PREFIX, Lock, LockLost, election, observe
from kvnode.client.errors import *  # noqa: F403  (every error, as kvnode.client.X)
from kvnode.client.kv import (
    DEFAULT_TIMEOUT,
    JsonObjects,
    KeyItem,
    KvClient,
    ListPage,
    RetryBudget,
    Value,
    WatchEvent,
    WriteResult,
    key_path,
    normalize_endpoint,
)


class Client(KvClient):
    """The client: every key-value call of `KvClient`, and distributed locks."""

    def lock(self, name: str, *, ttl: float = 10.0, grace: float | None = None) -> Lock:
        """A distributed lock: `async with client.lock("name") as lock:` (see
        kvnode.client.coordination); `lock.fencing_token` orders its holders, and `lock.lost`
        is set `grace` seconds before the lease could expire unrenewed."""
        return Lock(self, f"{LOCKS_PREFIX}{name}/", ttl, grace=grace)


class SyncClient:
    """Blocking wrapper: each call runs the async client on a private event loop."""

    def __init__(self, endpoints: Sequence[str], **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = Client(endpoints, **kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(method(*args, **kwargs))

        return call

    def watch(self, *args: Any, **kwargs: Any) -> Iterator[WatchEvent]:
        """`Client.watch`, as a blocking iterator: each event once it arrives. Closing the
        iterator (or leaving the loop over it) ends the watch."""
        events = self._client.watch(*args, **kwargs)
        try:
            while True:
                try:
                    yield self._loop.run_until_complete(anext(events))
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run_until_complete(events.aclose())

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


__all__ = [
    *errors.__all__,
    "DEFAULT_TIMEOUT",
    "Client",
    "JsonObjects",
    "KeyItem",
    "KvClient",
    "ListPage",
    "Lock",
    "LockLost",
    "RetryBudget",
    "SyncClient",
    "Value",
    "WatchEvent",
    "WriteResult",
    "election",
    "key_path",
    "normalize_endpoint",
    "observe",
]
