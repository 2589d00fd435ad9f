"""Watch requests over HTTP: `?watch=true` (long-poll) and `?watch=stream` (NDJSON).

Both start after a read barrier, so a watch never misses a write acknowledged
before the request arrived, and both are served from this node's own applied
changes. A stream says where it stands with a progress line when idle, and
ends with an error line rather than going quiet when the node has lost its
leader for longer than an election timeout (it may be cut off from the
cluster; the client should resume elsewhere).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from kvnode.consensus import Unavailable
from kvnode.contract import value_fields
from kvnode.http.request import (
    MAX_REVISION,
    ApiError,
    json_response,
    parse_seconds,
    parse_uint,
)
from kvnode.service import Service
from kvnode.storage.changes import Change
from kvnode.watch.history import Compacted
from kvnode.watch.hub import Subscription

WATCH_MODES = ("true", "stream")
WATCH_PARAMS = frozenset({"watch", "from_revision", "timeout"})
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_TIMEOUT_SECONDS = 300.0
PROGRESS_SECONDS = 5.0  # an idle stream says where it stands at least this often
CHECK_SECONDS = 0.5  # how often a waiting watch looks at the leader and the client
NDJSON = "application/x-ndjson"
EVENT_OVERHEAD_BYTES = 100  # an event's JSON beyond its key and value, about


def event(change: Change) -> dict[str, Any]:
    """A change as the API shows it."""
    body: dict[str, Any] = {
        "type": change.kind,
        "key": change.key,
        "revision": change.revision,
        "create_revision": change.create_revision,
    }
    if change.value is not None:
        body.update(value_fields(change.value))
    return body


def compacted(exc: Compacted) -> ApiError:
    return ApiError(
        410,
        "revision_compacted",
        f"{exc}; list again and watch from the list's X-KV-Index + 1",
        oldest_revision=exc.oldest_revision,
    )


async def watch(
    request: web.Request,
    service: Service,
    query: dict[str, str],
    *,
    key: str | None = None,
    prefix: str | None = None,
) -> web.StreamResponse:
    """Serve a watch of `key` (or of every key under `prefix`) as `query` asks."""
    mode = query["watch"]
    if mode not in WATCH_MODES:
        raise ApiError(400, "bad_watch", "watch must be true (long-poll) or stream")
    from_revision = None
    if "from_revision" in query:
        from_revision = max(
            1, parse_uint(query["from_revision"], "from_revision", "bad_revision", 0, MAX_REVISION)
        )
    if mode == "stream" and "timeout" in query:
        raise ApiError(400, "bad_timeout", "timeout is for watch=true; a stream has none")
    timeout = parse_seconds(
        query.get("timeout", str(DEFAULT_TIMEOUT_SECONDS)),
        "timeout",
        "bad_timeout",
        0,
        MAX_TIMEOUT_SECONDS,
    )
    if service.watches.watchers >= service.config.max_watchers:
        raise ApiError(
            503,
            "too_many_watchers",
            f"this node serves {service.config.max_watchers} watches already (max_watchers);"
            " retry, or watch another node",
            {"Retry-After": "1"},
        )
    if not service.config.unsafe_local_reads:
        await service.read_barrier()
    try:
        subscription = service.watches.subscribe(
            key=key, prefix=prefix, from_revision=from_revision
        )
    except Compacted as exc:
        raise compacted(exc) from None
    try:
        if mode == "stream":
            return await stream(request, service, subscription)
        return await long_poll(request, service, subscription, timeout)
    finally:
        service.watches.unsubscribe(subscription)


def leader_lost(service: Service) -> bool:
    return service.leaderless_seconds() > service.config.election_timeout_max


async def long_poll(
    request: web.Request, service: Service, subscription: Subscription, timeout: float
) -> web.Response:
    """The retained changes from the revision on (at most about `max_list_bytes` of them,
    whole revisions, the next revision in `X-KV-Next-Revision`), as soon as there is one;
    `[]` after `timeout` seconds without any. It ends as soon as its client has gone."""
    deadline = time.monotonic() + timeout
    while True:
        batch = subscription.take()
        if batch.changes or subscription.ended is not None:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if client_gone(request):  # nobody to answer: 499, as nginx logs it
            raise ApiError(499, "client_gone", "the client went away")
        if leader_lost(service):
            raise Unavailable("no_leader", "this node has lost its leader; watch another node")
        await subscription.wait(min(remaining, CHECK_SECONDS))
    ended = subscription.ended
    if ended is not None and not batch.changes:
        status = 410 if ended["error"] == "revision_compacted" else 503
        extra = {k: v for k, v in ended.items() if k not in ("type", "error", "message")}
        raise ApiError(status, ended["error"], ended["message"], **extra)
    events = page(batch.changes, service.config.max_list_bytes)
    if events:
        next_revision = events[-1]["revision"] + 1
    else:
        next_revision = max(subscription.from_revision, batch.revision + 1)
    return json_response(
        200, events, {"X-KV-Next-Revision": str(next_revision), "X-KV-Index": str(batch.revision)}
    )


def page(changes: list[Change], max_bytes: int) -> list[dict[str, Any]]:
    """The events of `changes` up to about `max_bytes` of JSON, cut between revisions only
    (a revision's changes, a transaction's say, are never split), and at least one."""
    events: list[dict[str, Any]] = []
    size = 0
    for change in changes:
        if size > max_bytes and change.revision != events[-1]["revision"]:
            break
        events.append(event(change))
        size += len(change.key) + len(change.value or b"") + EVENT_OVERHEAD_BYTES
    return events


async def stream(
    request: web.Request, service: Service, subscription: Subscription
) -> web.StreamResponse:
    """One NDJSON line per change until the client goes away or the watch cannot go on."""
    response = web.StreamResponse(
        headers={
            "Content-Type": NDJSON,
            "X-KV-Index": str(subscription.revision),
            **service.node_headers(),
        }
    )
    response.enable_chunked_encoding()
    said_at = time.monotonic()
    try:
        await response.prepare(request)
        while not client_gone(request):
            batch = subscription.take()
            lines = [orjson.dumps(event(change)) + b"\n" for change in batch.changes]
            ended = subscription.ended
            if ended is None and leader_lost(service):
                ended = {
                    "type": "error",
                    "error": "no_leader",
                    "message": "this node has lost its leader; resume on another node",
                }
            if ended is None and not lines and time.monotonic() - said_at >= PROGRESS_SECONDS:
                lines.append(orjson.dumps({"type": "progress", "revision": batch.revision}) + b"\n")
            if ended is not None:
                lines.append(orjson.dumps({**ended, "revision": batch.revision}) + b"\n")
            if lines:
                await response.write(b"".join(lines))
                said_at = time.monotonic()
            if ended is not None:
                break
            await subscription.wait(CHECK_SECONDS)
        if not client_gone(request):
            await response.write_eof()
    except ConnectionError:
        pass  # the client went away (perhaps before the headers could be sent)
    return response


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
