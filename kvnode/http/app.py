"""The HTTP API (aiohttp): thin handlers that validate, call the service, and map results.

Every failure becomes a JSON body `{error, message}` through one middleware:
validation problems raise `ApiError`; the service's `Unavailable` becomes 503
with Retry-After and `Indeterminate` becomes 504 with `"indeterminate": true`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kvnode.config import MAX_KEY_BYTES
from kvnode.contract import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, value_fields
from kvnode.http.auth import GRANT, authenticate, authorize
from kvnode.http.checks import check_cluster, check_single_headers
from kvnode.http.console import add_console_routes
from kvnode.http.cors import cors_headers, preflight
from kvnode.http.keys import consistent_read, expire_at_or_none
from kvnode.http.lease import add_lease_routes
from kvnode.http.members import add_membership_routes
from kvnode.http.metrics import Metrics
from kvnode.http.request import (
    BODY_TIMEOUT,
    RETRY_AFTER_SECONDS,
    ApiError,
    api_error_of,
    error_response,
    index_header,
    json_response,
    parse_key,
    parse_request_id,
    parse_uint,
    query_of,
)
from kvnode.http.tokens import add_token_routes
from kvnode.http.txn import delete_range, post_txn
from kvnode.http.watch import WATCH_PARAMS, watch
from kvnode.service import KeyRecord, Service

log = logging.getLogger(__name__)

LIST_ITEM_OVERHEAD_BYTES = 128  # JSON field names and numbers around each listed key
# The query parameters each route takes; any other, or any given twice, is a 400.
LIST_PARAMS = frozenset({"prefix", "end", "limit", "values", "consistency", "start_after", "count"})
RANGE_DELETE_PARAMS = frozenset({"prefix", "end", "confirm"})
NO_PARAMS: frozenset[str] = frozenset()

SERVICE = web.AppKey("service", Service)
METRICS = web.AppKey("metrics", Metrics)

# The headers that let a web page of another origin read the reply (kvnode.http.cors),
# added when it is prepared: a watch stream sends its headers before its handler returns.
CORS = web.RequestKey("cors", dict[str, str])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        request[CORS] = cors_headers(request, service)
        answer = preflight(request)
        if answer is not None:
            response = web.Response(status=answer.status, headers=answer.headers)
        else:
            check_single_headers(request)
            grant = authenticate(request, service)
            request[GRANT] = grant
            authorize(request, grant)
            check_cluster(request, service)
            response = await handler(request)
    except web.HTTPException as exc:
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(
            exc.status, code, f"{exc.reason}: {request.method} {request.path}"
        )
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except Exception as exc:
        error = api_error_of(exc, request)
        response = error_response(
            error.status, error.code, error.message, error.headers, **error.extra
        )
    response.headers.update(service.node_headers())
    seconds = time.perf_counter() - started
    request.app[METRICS].record(request.method, response.status, seconds, route_of(request))
    return response


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(request.get(CORS, {}))


def route_of(request: web.Request) -> str:
    """The latency series of a request: the route pattern that matched (`/kv/{key}`),
    with watches apart, since a long-poll's latency is its wait."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical + (" watch" if "watch" in request.query else "")


# -- handlers ------------------------------------------------------------------------


async def watch_key(request: web.Request) -> web.StreamResponse:
    """`GET /kv/{key}?watch`: the key's changes (kvnode.http.watch). A plain read of one
    key never gets here: the lean path serves it (kvnode.http.lean)."""
    return await watch(
        request, request.app[SERVICE], query_of(request, WATCH_PARAMS), key=parse_key(request)
    )


async def delete_keys(request: web.Request) -> web.Response:
    """`DELETE /kv/?prefix=P&end=E&confirm=true`. Without `confirm=true` nothing is
    deleted: a request that lost its key name (`DELETE /kv/`) must not wipe a prefix."""
    query = query_of(request, RANGE_DELETE_PARAMS)
    if query.get("confirm") != "true":
        raise ApiError(
            400,
            "confirm_required",
            "deleting every key under a prefix needs confirm=true (a key goes in the path:"
            " DELETE /kv/<key>)",
        )
    prefix, end = range_query(query)
    if not prefix and not end:
        raise ApiError(400, "bad_range", "give a prefix or an end: this would delete every key")
    deleted, outcome = await delete_range(
        request.app[SERVICE], prefix, end, parse_request_id(request)
    )
    return json_response(
        200,
        {"deleted": deleted, "revision": outcome.revision},
        {"X-KV-Revision": str(outcome.revision), **index_header(outcome.log_index)},
    )


def range_query(query: dict[str, str]) -> tuple[str, str]:
    """`prefix` and `end` (exclusive, "" for none) of a list, count or range delete."""
    prefix, end = query.get("prefix", ""), query.get("end", "")
    for name, value in (("prefix", prefix), ("end", end)):
        if len(value.encode()) > MAX_KEY_BYTES:
            raise ApiError(400, "bad_key", f"{name} is longer than {MAX_KEY_BYTES} bytes")
    return prefix, end


def listed(key: str, record: KeyRecord, with_value: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "key": key,
        "revision": record.mod_revision,
        "create_revision": record.create_revision,
        "expire_at": expire_at_or_none(record),
    }
    if with_value:
        item.update(value_fields(record.value))
    return item


async def list_keys(request: web.Request) -> web.StreamResponse:
    """Keys under a prefix in key order, paged: at most `limit` keys and about
    `max_list_bytes` of JSON. A cut reply carries `X-KV-More: true` and
    `X-KV-Next-Start-After`, the value to send as `start_after` for the next page.
    With `watch`, the changes under the prefix instead (kvnode.http.watch)."""
    if "watch" in request.query:
        query = query_of(request, WATCH_PARAMS | {"prefix"})
        return await watch(request, request.app[SERVICE], query, prefix=query.get("prefix", ""))
    query = query_of(request, LIST_PARAMS)
    prefix, end = range_query(query)
    count = query.get("count", "false")
    if count not in ("true", "false"):
        raise ApiError(400, "bad_count", "count must be true or false")
    if count == "true":
        extra = set(query) - {"prefix", "end", "count", "consistency"}
        if extra:
            raise ApiError(400, "bad_count", f"count takes no {', '.join(sorted(extra))}")
        service = request.app[SERVICE]
        await consistent_read(service, query)
        counted, index = service.count(prefix, end)
        return json_response(200, {"count": counted, "revision": index}, index_header(index))
    limit = parse_uint(
        query.get("limit", str(DEFAULT_LIST_LIMIT)), "limit", "bad_limit", 1, MAX_LIST_LIMIT
    )
    values = query.get("values", "false")
    if values not in ("true", "false"):
        raise ApiError(400, "bad_values", "values must be true or false")
    with_values = values == "true"
    service = request.app[SERVICE]
    await consistent_read(service, query)
    found, index = service.scan(prefix, limit + 1, query.get("start_after", ""), end)
    budget = service.config.max_list_bytes
    items: list[dict[str, Any]] = []
    for key, record in found[:limit]:
        size = (
            LIST_ITEM_OVERHEAD_BYTES + 2 * len(key) + (2 * len(record.value) if with_values else 0)
        )
        if items and size > budget:
            break
        budget -= size
        items.append(listed(key, record, with_values))
    headers = index_header(index)
    if len(items) < len(found):
        headers["X-KV-More"] = "true"
        headers["X-KV-Next-Start-After"] = quote(items[-1]["key"], safe="")
    return json_response(200, items, headers)


async def txn(request: web.Request) -> web.Response:
    query_of(request, NO_PARAMS)
    return await post_txn(request, request.app[SERVICE], parse_request_id(request))


async def snapshot(request: web.Request) -> web.Response:
    """A hot backup: the whole state at one revision, as a checksummed snapshot file
    (`kvnode backup` saves it, `kvnode restore` makes a node's data directory of it)."""
    query_of(request, NO_PARAMS)
    service = request.app[SERVICE]
    await service.read_barrier()  # it holds every write acknowledged before the request
    data, index = await service.backup()
    headers = {
        **index_header(index),
        "X-KV-Snapshot-SHA256": hashlib.sha256(data).hexdigest(),
        "Content-Disposition": f'attachment; filename="kvnode-{index}.snap"',
    }
    return web.Response(body=data, content_type="application/octet-stream", headers=headers)


async def status(request: web.Request) -> web.Response:
    """The node's view. The state digest (`"digest"`, null unless asked) hashes every key
    under the lock, about a second per million keys during which nothing applies: it is
    computed only for `?digest=true`, by whoever compares replicas."""
    query = query_of(request, frozenset({"digest"}))
    digest = query.get("digest", "false")
    if digest not in ("true", "false"):
        raise ApiError(400, "bad_digest", "digest must be true or false")
    return json_response(200, request.app[SERVICE].status(with_digest=digest == "true"))


async def health(request: web.Request) -> web.Response:
    query_of(request, NO_PARAMS)
    return json_response(200, {"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    query_of(request, NO_PARAMS)
    if request.app[SERVICE].ready():
        return json_response(200, {"ready": True})
    return error_response(
        503,
        "not_ready",
        "no leader yet, or still applying the log",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def metrics(request: web.Request) -> web.Response:
    query_of(request, NO_PARAMS)
    response = web.Response(body=request.app[METRICS].render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def create_app(service: Service) -> web.Application:
    """Every route but the single-key ones, which the lean path serves (kvnode.http.lean):
    aiohttp still routes `/kv/{key}` here for a watch."""
    app = web.Application(
        middlewares=[errors_and_headers],
        client_max_size=service.config.max_value_bytes + 1,
    )
    app[SERVICE] = service
    app[METRICS] = Metrics(service)
    app[BODY_TIMEOUT] = service.config.body_timeout

    async def end_watches(app: web.Application) -> None:
        service.watches.end_all("shutting_down", "this node is stopping; resume on another node")

    app.on_shutdown.append(end_watches)
    app.on_response_prepare.append(add_cors_headers)
    app.router.add_get("/kv/", list_keys)
    app.router.add_get("/kv", list_keys)
    # [\s\S]: a key may hold any character, newlines included (`.` would stop at them).
    app.router.add_delete("/kv/", delete_keys)
    app.router.add_route("GET", "/kv/{key:[\\s\\S]+}", watch_key)
    app.router.add_post("/txn", txn)
    add_lease_routes(app.router, SERVICE)
    add_membership_routes(app.router, SERVICE)
    add_token_routes(app.router, SERVICE)
    app.router.add_get("/snapshot", snapshot)
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    add_console_routes(app.router)
    return app
