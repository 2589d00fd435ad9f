"""The key-value calls of kvnode's client (`KvClient`): every route of the HTTP API, with
the retry and failover rules below. `kvnode.client.Client` adds locks on top.

Used by the CLI, the tests, the benchmarks and the chaos tools. It tries the
endpoints in order and moves on to the next one only when that is safe: any
request that never reached a node (connection refused), and reads whatever
happened. "Never reached" is judged by whether any copy of the request went out:
aiohttp silently resends a PUT or DELETE once when a kept-alive connection
drops, and that resend's "connection refused" says nothing about the first copy.

Every write carries an `X-Request-Id`. When its outcome is unknown (504, a
timeout, a connection lost mid-request) or the cluster is briefly without a
leader (503), the client retries *with the same id* until it gets a definite
answer or `write_deadline` passes; the cluster applies an id at most once, so
a retry returns the first outcome (same revision, same CAS verdict). With
`retry_writes=False` such a write raises `Indeterminate` / `Unavailable` at
once, never a guess.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import os
import secrets
import ssl
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypedDict, Unpack
from urllib.parse import quote

import aiohttp
import orjson

from kvnode.client.errors import (
    Indeterminate,
    KvError,
    NotFound,
    Unavailable,
    WatchCompacted,
    WrongCluster,
    error_from,
    is_wrong_cluster,
)
from kvnode.contract import CLUSTER_HEADER, value_fields

DEFAULT_TIMEOUT = 10.0
JsonObjects = list[dict[str, Any]]
# A watch stream says where it stands at least every 5 s; silence this long means the node
# is paused or cut off, so the watch resumes on another.
WATCH_SILENCE_SECONDS = 15.0
RETRY_BACKOFF_SECONDS = (0.05, 0.1, 0.2, 0.4, 0.8)
MAX_LEADER_REDIRECTS = 3


@dataclass(frozen=True)
class WriteResult:
    key: str
    revision: int
    created: bool
    expire_at: int | None


@dataclass(frozen=True)
class Value:
    value: bytes
    revision: int
    create_revision: int
    expire_at: int | None
    node: str


class ListOptions(TypedDict, total=False):
    """The options of `list`, `list_with_index` and `list_page` (see list_page)."""

    limit: int
    values: bool
    consistency: str
    endpoint: str | None
    end: str


def value_in(item: dict[str, Any]) -> bytes | None:
    """The value an API object carries as `value` (UTF-8 text) or `value_base64`, if any."""
    if "value" in item:
        return bytes(item["value"].encode())
    if "value_base64" in item:
        return base64.b64decode(item["value_base64"])
    return None


@dataclass(frozen=True)
class KeyItem:
    """One key of a list: `value` is None unless the list asked for values."""

    key: str
    revision: int
    create_revision: int
    expire_at: int | None
    value: bytes | None = None

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KeyItem:
        return cls(
            item["key"],
            item["revision"],
            item["create_revision"],
            item.get("expire_at"),
            value_in(item),
        )

    def to_json(self) -> dict[str, Any]:
        """The key as the API lists it."""
        item: dict[str, Any] = {"key": self.key, "revision": self.revision}
        item["create_revision"] = self.create_revision
        item["expire_at"] = self.expire_at
        if self.value is not None:
            item.update(value_fields(self.value))
        return item


@dataclass(frozen=True)
class ListPage:
    """One page of `GET /kv/?prefix=...`: its keys, the store revision read at, and where
    the next page starts (None: this was the last)."""

    items: list[KeyItem]
    revision: int
    next_start_after: str | None


@dataclass(frozen=True)
class WatchEvent:
    """One change: `type` is put, delete or expire; `value` is None unless put."""

    type: str
    key: str
    revision: int
    create_revision: int
    value: bytes | None
    node: str

    @classmethod
    def from_json(cls, item: dict[str, Any], node: str) -> WatchEvent:
        return cls(
            item["type"],
            item["key"],
            item["revision"],
            item["create_revision"],
            value_in(item),
            node,
        )

    def to_json(self) -> dict[str, Any]:
        """The event as the API sends it."""
        item: dict[str, Any] = {"type": self.type, "key": self.key, "revision": self.revision}
        item["create_revision"] = self.create_revision
        if self.value is not None:
            item.update(value_fields(self.value))
        return item


class _Resume:
    """Where a watch picks up after a reconnect: at the last revision it saw, skipping the
    keys it already had at that revision (one command may change many keys, and a
    connection can drop between their lines), so nothing is missed or repeated."""

    def __init__(self, from_revision: int | None) -> None:
        self.revision = from_revision
        self.seen: set[str] = set()

    def fresh(self, event: WatchEvent) -> bool:
        if self.revision is not None and event.revision == self.revision:
            if event.key in self.seen:
                return False
            self.seen.add(event.key)
            return True
        if self.revision is not None and event.revision < self.revision:
            return False
        self.revision, self.seen = event.revision, {event.key}
        return True

    def progressed(self, revision: int) -> None:
        """Everything up to `revision` was received."""
        if self.revision is None or revision + 1 > self.revision:
            self.revision, self.seen = revision + 1, set()


class _Attempt:
    """Per-request trace context: how many copies of the request went out on the wire."""

    copies = 0

    @property
    def sent(self) -> bool:
        return self.copies > 0


async def _count_copy(
    _session: aiohttp.ClientSession,
    context: Any,
    _params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    context.trace_request_ctx.copies += 1


class _EndpointOrder:
    """Which endpoint a request tries first: the one that answered last. An endpoint that
    fails (refused, timed out) sends the next request to the one after it, so a paused
    node costs one attempt, not one per request. (The list may change in between.)"""

    def __init__(self) -> None:
        self.first = 0

    def targets(self, endpoints: list[str]) -> list[tuple[int, str]]:
        count = len(endpoints)
        start = self.first % count
        return [((start + i) % count, endpoints[(start + i) % count]) for i in range(count)]

    def answered(self, position: int) -> None:
        if position >= 0:  # -1: an endpoint the caller named
            self.first = position

    def failed(self, position: int) -> None:
        if self.first == position >= 0:
            self.first = position + 1


def normalize_endpoint(endpoint: str, scheme: str = "http") -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if "://" in endpoint else f"{scheme}://{endpoint}"


class RetryBudget:
    """Backoff between retries (RETRY_BACKOFF_SECONDS), within one deadline."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self._attempt = 0

    async def wait(self) -> bool:
        """Sleep before the next retry; False (at once) when it would pass the deadline."""
        delay = RETRY_BACKOFF_SECONDS[min(self._attempt, len(RETRY_BACKOFF_SECONDS) - 1)]
        if time.monotonic() + delay > self._deadline:
            return False
        await asyncio.sleep(delay)
        self._attempt += 1
        return True


def prev_value_param(value: bytes) -> dict[str, str]:
    """A CAS comparison value: as text when it is UTF-8, else base64 (any bytes)."""
    return value_fields(value, "prev_value")


def key_path(key: str) -> str:
    return "/kv/" + quote(key, safe="/")


class KvClient:
    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        token: str | None = None,
        retry_writes: bool = True,
        write_deadline: float | None = None,
        retry_reads: bool = False,
        tls: ssl.SSLContext | None = None,
        cluster_id: str | None = None,
    ) -> None:
        """`tls`: talk HTTPS with this context (endpoints without a scheme become https://);
        see kvnode.client.tls.client_context. `cluster_id`: the cluster meant; a node of another
        refuses every request (WrongCluster) before acting on it, and the next endpoint is
        tried."""
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self._scheme = "https" if tls is not None else "http"
        self._tls = tls
        self.endpoints = [normalize_endpoint(e, self._scheme) for e in endpoints]
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cluster_id:
            self._headers[CLUSTER_HEADER] = cluster_id
        self._session: aiohttp.ClientSession | None = None
        self._retry_writes = retry_writes
        self._retry_reads = retry_reads
        self._write_deadline = timeout if write_deadline is None else write_deadline
        self._order = _EndpointOrder()
        self._attempt_timeout = self._timeout  # each attempt at one endpoint

    def bounded(self, attempt_timeout: float) -> Self:
        """This client (its connections, endpoints, credentials and retries) with each
        attempt at one endpoint cut off after `attempt_timeout` seconds, so an endpoint
        that does not answer is left for the next one in time: what a lease's keepalive
        needs when a node is paused. Closing the original closes both."""
        self._get_session()
        view = copy.copy(self)
        view._attempt_timeout = aiohttp.ClientTimeout(total=attempt_timeout)
        return view

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            sent = aiohttp.TraceConfig()
            sent.on_request_headers_sent.append(_count_copy)
            connector = aiohttp.TCPConnector(ssl=self._tls) if self._tls is not None else None
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, trace_configs=[sent], connector=connector
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        endpoint: str | None = None,
        idempotent: bool,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send to the first endpoint that answers; raise the matching KvError on 4xx/5xx.

        With `retry_reads`, a read refused with 503 (an election under way) is tried
        again with backoff until the write deadline, as writes are."""
        retries = RetryBudget(self._write_deadline)
        while True:
            try:
                return await self._request_once(
                    method,
                    path,
                    params=params,
                    data=data,
                    headers=headers,
                    endpoint=endpoint,
                    idempotent=idempotent,
                )
            except Unavailable:
                if not (idempotent and self._retry_reads) or not await retries.wait():
                    raise

    async def _request_once(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None,
        data: bytes | None,
        headers: dict[str, str] | None,
        endpoint: str | None,
        idempotent: bool,
    ) -> tuple[int, bytes, dict[str, str]]:
        session = self._get_session()
        targets = (
            [(-1, normalize_endpoint(endpoint, self._scheme))]
            if endpoint
            else self._order.targets(self.endpoints)
        )
        last_error: Exception | None = None
        for position, target in targets:
            attempt = _Attempt()
            try:
                async with session.request(
                    method,
                    target + path,
                    params=params,
                    data=data,
                    headers={**self._headers, **(headers or {})},
                    trace_request_ctx=attempt,
                    allow_redirects=False,  # a 307 to the leader is followed by the caller
                    timeout=self._attempt_timeout,
                ) as response:
                    body = await response.read()
                    status, response_headers = response.status, dict(response.headers)
            except aiohttp.ClientConnectorError as exc:
                self._order.failed(position)
                if attempt.sent and not idempotent:
                    # aiohttp resends a PUT/DELETE once when a kept-alive connection drops;
                    # this failed *reconnect* hides a first copy that did reach the node.
                    raise Indeterminate(0, "indeterminate", f"{target}: {exc!r}") from exc
                last_error = exc  # never reached the node: try the next
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                _raise_if_cancelled()
                self._order.failed(position)
                if idempotent:
                    last_error = exc
                    continue
                raise Indeterminate(0, "indeterminate", f"{target}: {exc!r}") from exc
            if status == 503:  # this node cannot serve now (no leader): start elsewhere
                self._order.failed(position)
            else:
                self._order.answered(position)
            if status == 409 and is_wrong_cluster(body):
                self._order.failed(position)
                last_error = error_from(status, body)  # refused before acting: try the next
                continue
            if status == 503 and not idempotent and attempt.copies > 1:
                # The 503 refused aiohttp's silent resend; the first copy reached the node
                # before the connection dropped and may be applied.
                raise Indeterminate(
                    503,
                    "indeterminate",
                    f"{target}: a resend was refused, the first copy may have been applied",
                )
            if status >= 400:
                raise error_from(status, body)
            return status, body, response_headers
        if isinstance(last_error, WrongCluster):
            raise last_error
        tried = ", ".join(target for _position, target in targets)
        raise Unavailable(
            0, "unreachable", f"no endpoint answered (tried {tried}): {in_words(last_error)}"
        )

    async def write(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str],
        data: bytes | None = None,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> bytes:
        """A write under one request id, retried while its outcome is unknown."""
        headers = {"X-Request-Id": request_id or uuid.uuid4().hex}
        retries = RetryBudget(self._write_deadline)
        earlier_attempt_unknown = False
        while True:
            try:
                _status, body, _headers = await self.request(
                    method,
                    path,
                    params=params,
                    data=data,
                    headers=headers,
                    endpoint=endpoint,
                    idempotent=False,
                )
                return body
            except (Indeterminate, Unavailable) as exc:
                earlier_attempt_unknown |= isinstance(exc, Indeterminate)
                if not self._retry_writes or not await retries.wait():
                    if earlier_attempt_unknown and isinstance(exc, Unavailable):
                        # The last 503 only says *this* attempt was refused; an earlier one
                        # that timed out may still be applied, so "not applied" would be a lie.
                        raise Indeterminate(
                            exc.status,
                            "indeterminate",
                            f"an earlier attempt's outcome is unknown; last answer: {exc.message}",
                        ) from exc
                    raise

    async def put(
        self,
        key: str,
        value: bytes,
        *,
        ttl: float | None = None,
        prev_value: bytes | None = None,
        prev_revision: int | None = None,
        prev_exist: bool | None = None,
        lease: int | None = None,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> WriteResult:
        params: dict[str, str] = {}
        if ttl is not None:
            params["ttl"] = f"{ttl:g}"
        if lease is not None:
            params["lease"] = str(lease)
        if prev_value is not None:
            params.update(prev_value_param(prev_value))
        if prev_revision is not None:
            params["prev_revision"] = str(prev_revision)
        if prev_exist is not None:
            params["prev_exist"] = "true" if prev_exist else "false"
        body = await self.write(
            "PUT",
            key_path(key),
            params=params,
            data=value,
            endpoint=endpoint,
            request_id=request_id,
        )
        parsed = orjson.loads(body)
        return WriteResult(
            parsed["key"], parsed["revision"], parsed["created"], parsed["expire_at"]
        )

    async def get(
        self, key: str, *, consistency: str = "linearizable", endpoint: str | None = None
    ) -> Value | None:
        """The value, or None if the key does not exist."""
        try:
            _status, body, headers = await self.request(
                "GET",
                key_path(key),
                params={"consistency": consistency},
                endpoint=endpoint,
                idempotent=True,
            )
        except NotFound:
            return None
        expire = headers.get("X-KV-Expire-At")
        return Value(
            body,
            int(headers["X-KV-Revision"]),
            int(headers["X-KV-Create-Revision"]),
            int(expire) if expire else None,
            headers.get("X-KV-Node", ""),
        )

    async def delete(
        self,
        key: str,
        *,
        prev_value: bytes | None = None,
        prev_revision: int | None = None,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> int:
        """Delete `key`; returns the revision of the delete. Raises NotFound if absent."""
        params: dict[str, str] = {}
        if prev_value is not None:
            params.update(prev_value_param(prev_value))
        if prev_revision is not None:
            params["prev_revision"] = str(prev_revision)
        body = await self.write(
            "DELETE", key_path(key), params=params, endpoint=endpoint, request_id=request_id
        )
        return int(orjson.loads(body)["revision"])

    async def list_with_index(
        self, prefix: str = "", **options: Unpack[ListOptions]
    ) -> tuple[list[KeyItem], int]:
        """The keys under `prefix` (and before `end`) and the store revision they were read
        at: watch from that revision + 1 to see every later change (list, then watch)."""
        page = await self.list_page(prefix, **options)
        return page.items, page.revision

    async def list_page(
        self,
        prefix: str = "",
        *,
        limit: int = 1000,
        values: bool = False,
        consistency: str = "linearizable",
        endpoint: str | None = None,
        end: str = "",
        start_after: str = "",
    ) -> ListPage:
        """One page of a list: the next call takes `start_after=page.next_start_after`
        while that is not None (a reply is cut at `limit` keys or `max_list_bytes`)."""
        params = {
            "prefix": prefix,
            "limit": str(limit),
            "values": "true" if values else "false",
            "consistency": consistency,
        }
        if end:
            params["end"] = end
        if start_after:
            params["start_after"] = start_after
        _status, body, headers = await self.request(
            "GET", "/kv/", params=params, endpoint=endpoint, idempotent=True
        )
        items = [KeyItem.from_json(item) for item in orjson.loads(body)]
        more = headers.get("X-KV-More") == "true" and bool(items)
        return ListPage(items, int(headers["X-KV-Index"]), items[-1].key if more else None)

    async def count(
        self, prefix: str = "", *, end: str = "", consistency: str = "linearizable"
    ) -> int:
        """How many keys are under `prefix` (and before `end`), without listing them."""
        params = {"prefix": prefix, "count": "true", "consistency": consistency}
        if end:
            params["end"] = end
        _status, body, _headers = await self.request("GET", "/kv/", params=params, idempotent=True)
        return int(orjson.loads(body)["count"])

    async def delete_prefix(
        self, prefix: str, *, end: str = "", request_id: str | None = None
    ) -> tuple[int, int]:
        """Delete every key under `prefix` (and before `end`) at one revision; returns
        (how many were deleted, the revision)."""
        params = {"prefix": prefix, "confirm": "true"}
        if end:
            params["end"] = end
        body = await self.write("DELETE", "/kv/", params=params, request_id=request_id)
        reply = orjson.loads(body)
        return int(reply["deleted"]), int(reply["revision"])

    async def list(self, prefix: str = "", **options: Unpack[ListOptions]) -> list[KeyItem]:
        """The keys under `prefix` (and before `end`): one page, at most `limit` keys."""
        return (await self.list_page(prefix, **options)).items

    async def watch(
        self,
        key: str | None = None,
        *,
        prefix: str | None = None,
        from_revision: int | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Every change of `key` (or of the keys under `prefix`) from `from_revision` on
        (default: from now), in revision order, for as long as the caller iterates.

        It streams from one node and, when that node fails, is paused, or loses its
        leader, resumes on the next from where it was, with no gap and no duplicate.
        Raises WatchCompacted when the revision is older than every node retains, and
        Unavailable when no node could be watched for `write_deadline` seconds.
        """
        if (key is None) == (prefix is None):
            raise ValueError("watch a key or a prefix (one of them)")
        path = key_path(key) if key is not None else "/kv/"
        params = {"prefix": prefix} if prefix is not None else {}
        resume = _Resume(from_revision)
        silence = aiohttp.ClientTimeout(total=None, sock_read=WATCH_SILENCE_SECONDS)
        retries = RetryBudget(self._write_deadline)
        compacted_on: set[str] = set()  # nodes that no longer retain the revision
        turn = 0
        while True:
            target = self.endpoints[turn % len(self.endpoints)]
            turn += 1
            query = {**params, "watch": "stream"}
            if resume.revision is not None:
                query["from_revision"] = str(resume.revision)
            try:
                async with self._get_session().get(
                    target + path,
                    params=query,
                    headers=self._headers,
                    timeout=silence,
                    trace_request_ctx=_Attempt(),
                ) as response:
                    if response.status >= 400:
                        raise error_from(response.status, await response.read())
                    node = response.headers.get("X-KV-Node", "")
                    if resume.revision is None:
                        resume.progressed(int(response.headers["X-KV-Index"]))
                    async for line in response.content:
                        item = orjson.loads(line)
                        if item["type"] == "progress":
                            resume.progressed(item["revision"])
                        elif item["type"] == "error":
                            if item["error"] == "revision_compacted":
                                raise WatchCompacted(410, item["error"], item["message"], item)
                            break  # this node cannot go on: resume on the next
                        else:
                            event = WatchEvent.from_json(item, node)
                            if resume.fresh(event):
                                retries = RetryBudget(self._write_deadline)
                                compacted_on.clear()
                                yield event
            except WatchCompacted:
                # This node lost the revision (a snapshot replaced its state, or it
                # restarted from a checkpoint); another may still have it.
                compacted_on.add(target)
                if compacted_on >= set(self.endpoints):
                    raise
            except KvError as exc:
                if exc.status < 500:
                    raise  # a request this node will never take (bad input, no token)
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                _raise_if_cancelled()
                # resume on the next node
            if not await retries.wait():
                raise Unavailable(0, "unreachable", "no node could be watched")

    async def txn(
        self,
        compare: Sequence[dict[str, Any]] = (),
        success: Sequence[dict[str, Any]] = (),
        failure: Sequence[dict[str, Any]] = (),
        *,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """A transaction (POST /txn): `{"succeeded", "revision", "responses"}`."""
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        reply: dict[str, Any] = orjson.loads(
            await self.write(
                "POST", "/txn", params={}, data=orjson.dumps(body), request_id=request_id
            )
        )
        return reply

    async def lease_grant(self, ttl: float) -> dict[str, Any]:
        """A new lease: `{"id", "ttl", "expire_at"}`."""
        lease: dict[str, Any] = orjson.loads(
            await self.write("POST", "/lease", params={"ttl": f"{ttl:g}"})
        )
        return lease

    async def lease_keepalive(self, lease_id: int, *, once: bool = False) -> dict[str, Any]:
        """Push the lease's deadline a full ttl ahead; NotFound once it is gone.

        With `once`, one pass over the endpoints and no retry: the caller (a lock's
        keepalive loop) decides when to try again, against its own deadline. Renewing
        twice is harmless, so an endpoint that does not answer is left for the next."""
        path = f"/lease/{lease_id}/keepalive"
        if once:
            _status, body, _headers = await self._request_once(
                "POST", path, params=None, data=None, headers=None, endpoint=None, idempotent=True
            )
        else:
            body = await self.write("POST", path, params={})
        lease: dict[str, Any] = orjson.loads(body)
        return lease

    async def lease_revoke(self, lease_id: int) -> None:
        """Delete the lease and every key attached to it; NotFound if it is gone."""
        await self.write("DELETE", f"/lease/{lease_id}", params={})

    async def lease(self, lease_id: int) -> dict[str, Any] | None:
        """The lease with its keys and remaining seconds, or None."""
        try:
            _status, body, _headers = await self.request(
                "GET", f"/lease/{lease_id}", idempotent=True
            )
        except NotFound:
            return None
        lease: dict[str, Any] = orjson.loads(body)
        return lease

    async def leases(self) -> JsonObjects:
        _status, body, _headers = await self.request("GET", "/lease/", idempotent=True)
        leases: JsonObjects = orjson.loads(body)
        return leases

    async def token_create(
        self,
        role: str,
        *,
        prefixes: Sequence[str] = (),
        token_id: str | None = None,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """Create an access token (needs an admin token); `{"id", "token", "role",
        "prefixes"}`. Bring your own `secret` to make a retried call safe: the node only
        keeps its hash, so it could not show a secret it drew itself a second time."""
        body: dict[str, Any] = {
            "role": role,
            "prefixes": list(prefixes),
            "token": secret or f"kvn_{secrets.token_urlsafe(32)}",
        }
        if token_id is not None:
            body["id"] = token_id
        reply = await self.write("POST", "/auth/tokens", params={}, data=orjson.dumps(body))
        created: dict[str, Any] = orjson.loads(reply)
        return created

    async def tokens(self) -> JsonObjects:
        """The access tokens: `{"id", "role", "prefixes"}` each (never a secret)."""
        _status, body, _headers = await self.request("GET", "/auth/tokens", idempotent=True)
        tokens: JsonObjects = orjson.loads(body)
        return tokens

    async def token_revoke(self, token_id: str) -> None:
        await self.write("DELETE", f"/auth/tokens/{quote(token_id, safe='')}", params={})

    async def members(self) -> JsonObjects:
        """`GET /cluster/members`: every voter as the answering node sees it."""
        _status, body, _headers = await self.request("GET", "/cluster/members", idempotent=True)
        members: JsonObjects = orjson.loads(body)
        return members

    async def member_add(self, raft_addr: str, http_url: str, node_id: str = "") -> dict[str, Any]:
        """Add a voter (start it with `--join`); `{"member", "members"}`."""
        body = {"raft_addr": raft_addr, "http_url": http_url}
        if node_id:
            body["id"] = node_id
        return await self._change_members("POST", "/cluster/members", orjson.dumps(body))

    async def member_remove(self, member: str) -> dict[str, Any]:
        """Remove a voter by id or raft_addr; `{"removed", "members"}`."""
        return await self._change_members("DELETE", f"/cluster/members/{quote(member, safe='')}")

    async def _change_members(
        self, method: str, path: str, data: bytes | None = None
    ) -> dict[str, Any]:
        """A membership change, made by the leader: follows a follower's 307 there, and
        retries while no leader is known (503) until the write deadline."""
        endpoint: str | None = None
        retries = RetryBudget(self._write_deadline)
        redirects = 0
        while True:
            try:
                status, body, _headers = await self._request_once(
                    method,
                    path,
                    params=None,
                    data=data,
                    headers=None,
                    endpoint=endpoint,
                    idempotent=False,
                )
            except Unavailable:
                if not await retries.wait():
                    raise
                endpoint = None
                continue
            reply: dict[str, Any] = orjson.loads(body)
            if status == 307 and redirects < MAX_LEADER_REDIRECTS:
                endpoint, redirects = reply["leader"], redirects + 1
                continue
            if status == 307:
                raise KvError(status, "not_leader", reply.get("message", ""), reply)
            return reply

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, *, endpoint: str | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET a large body (a backup) from one node, to read as it arrives; no total
        timeout, but a minute of silence fails it."""
        target = normalize_endpoint(endpoint, self._scheme) if endpoint else self.endpoints[0]
        async with self._get_session().get(
            target + path,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
            trace_request_ctx=_Attempt(),
        ) as response:
            if response.status >= 400:
                raise error_from(response.status, await response.read())
            yield response

    async def status(self, endpoint: str | None = None, *, digest: bool = False) -> dict[str, Any]:
        """The node's /status; with `digest=True` also the state digest, which costs the
        node the hashing of every key (compare replicas with it, do not poll it)."""
        params = {"digest": "true"} if digest else {}
        _status, body, _headers = await self.request(
            "GET", "/status", params=params, endpoint=endpoint, idempotent=True
        )
        status: dict[str, Any] = orjson.loads(body)
        return status


def in_words(error: BaseException | None) -> str:
    """Why a node could not be reached, as a person would say it (not aiohttp's repr)."""
    if isinstance(error, aiohttp.ClientSSLError):  # a certificate or a TLS handshake
        return str(error)
    if isinstance(error, aiohttp.ClientConnectorError):
        number = error.os_error.errno
        return os.strerror(number).lower() if number else str(error.os_error)
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if error is None:
        return "no endpoint to try"
    return str(error) or type(error).__name__


def _raise_if_cancelled() -> None:
    """A timeout that fires together with a cancellation (Ctrl-C) can come out as a
    TimeoutError, the cancellation swallowed; retrying then would never end. The task
    still counts the cancellation request: honour it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
