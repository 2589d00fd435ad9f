"""The HTTP API (aiohttp): thin handlers that validate, call the service, and map results.

Every failure becomes a JSON body `{error, message}` through one middleware:
validation problems raise `ApiError`; the service's `Unavailable` becomes 503
with Retry-After and `Indeterminate` becomes 504 with `"indeterminate": true`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kvnode import commands
from kvnode.clock import wall_clock_ms
from kvnode.commands_pb2 import Condition
from kvnode.config import BODY_TIMEOUT_SECONDS, MAX_KEY_BYTES
from kvnode.consensus import Indeterminate, Unavailable
from kvnode.contract import (
    CLUSTER_HEADER,
    CONSISTENCY_MODES,
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    MAX_TTL_SECONDS,
    WRONG_CLUSTER,
    value_fields,
)
from kvnode.http.auth import GRANT, authenticate, authorize
from kvnode.http.lease import add_lease_routes, lease_not_found
from kvnode.http.members import add_membership_routes
from kvnode.http.metrics import Metrics
from kvnode.http.request import (
    ASCII_SECONDS,
    BODY_TIMEOUT,
    MAX_REVISION,
    ApiError,
    error_response,
    index_header,
    json_response,
    parse_key,
    parse_uint,
    query_of,
    read_body,
    write_failure,
)
from kvnode.http.tokens import add_token_routes
from kvnode.http.txn import delete_range, post_txn
from kvnode.http.watch import WATCH_PARAMS, watch
from kvnode.service import KeyRecord, Outcome, QuotaExceeded, Service, Status

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "1"
MAX_REQUEST_ID_LENGTH = 128
LIST_ITEM_OVERHEAD_BYTES = 128  # JSON field names and numbers around each listed key
# The query parameters each route takes; any other, or any given twice, is a 400.
PUT_PARAMS = frozenset(
    {"ttl", "lease", "prev_value", "prev_value_base64", "prev_revision", "prev_exist"}
)
GET_PARAMS = frozenset({"consistency"})
DELETE_PARAMS = frozenset({"prev_value", "prev_value_base64", "prev_revision"})
LIST_PARAMS = frozenset({"prefix", "end", "limit", "values", "consistency", "start_after", "count"})
RANGE_DELETE_PARAMS = frozenset({"prefix", "end", "confirm"})
NO_PARAMS: frozenset[str] = frozenset()


SINGLE_HEADERS = (
    "X-Request-Id",
    "If-Match",
    "If-None-Match",
    "Authorization",
    CLUSTER_HEADER,
    "Content-Encoding",
)
REQUEST_ID = re.compile(f"[!-~]{{0,{MAX_REQUEST_ID_LENGTH}}}", re.ASCII)  # visible ASCII

SERVICE = web.AppKey("service", Service)
METRICS = web.AppKey("metrics", Metrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    started = time.perf_counter()
    try:
        check_single_headers(request)
        grant = authenticate(request, service)
        request[GRANT] = grant
        authorize(request, grant)
        check_cluster(request, service)
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)
    except Unavailable as exc:
        response = error_response(
            503, exc.reason, str(exc), headers={"Retry-After": RETRY_AFTER_SECONDS}
        )
    except Indeterminate as exc:
        response = error_response(504, "indeterminate", str(exc), indeterminate=True)
    except QuotaExceeded as exc:
        response = error_response(507, "quota_exceeded", str(exc))
    except web.HTTPException as exc:
        code = exc.reason.lower().replace(" ", "_")
        response = error_response(
            exc.status, code, f"{exc.reason}: {request.method} {request.path}"
        )
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = error_response(500, "internal", "internal error; see the node's log")
    response.headers.update(service.node_headers())
    seconds = time.perf_counter() - started
    request.app[METRICS].record(request.method, response.status, seconds, route_of(request))
    return response


def route_of(request: web.Request) -> str:
    """The latency series of a request: the route pattern that matched (`/kv/{key}`),
    with watches apart, since a long-poll's latency is its wait."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical + (" watch" if "watch" in request.query else "")


# -- request parsing -----------------------------------------------------------------


def check_cluster(request: web.Request, service: Service) -> None:
    """A client that names the cluster it means (`X-KV-Cluster`) is refused by a node of
    another cluster before anything is read or written, so it cannot write into the wrong
    one (ports reused by another cluster, a stale endpoint list)."""
    expected = request.headers.get(CLUSTER_HEADER)
    if not expected:
        return
    ours = service.cluster_id
    if not ours:
        raise ApiError(
            503,
            "cluster_id_unknown",
            "this node does not know its cluster's id yet (a new cluster without a leader)",
        )
    if expected != ours:
        raise ApiError(
            409,
            WRONG_CLUSTER,
            f"this node ({service.config.node_id}) belongs to cluster {ours}, not {expected}",
            cluster_id=ours,
        )


def check_single_headers(request: web.Request) -> None:
    """A header that says one thing (a request id, a condition, a token, a cluster) given
    twice is refused: taking the first one silently could turn a retry or a
    compare-and-swap into something else."""
    headers = request.headers
    for name in SINGLE_HEADERS:
        if name in headers and len(headers.getall(name)) > 1:
            raise ApiError(400, "repeated_header", f"{name} is given more than once", header=name)


def parse_request_id(request: web.Request) -> str:
    """The client's id for this write (X-Request-Id); a retry under it is applied at most once."""
    request_id = request.headers.get("X-Request-Id", "")
    if not REQUEST_ID.fullmatch(request_id):
        raise ApiError(
            400,
            "bad_request_id",
            f"X-Request-Id must be up to {MAX_REQUEST_ID_LENGTH} visible ASCII characters",
        )
    return request_id


def parse_ttl(raw: str | None) -> float | None:
    if raw is None:
        return None
    if not ASCII_SECONDS.fullmatch(raw):
        raise ApiError(400, "bad_ttl", f"ttl {raw!r} is not a number of seconds")
    ttl = float(raw)
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise ApiError(
            400, "bad_ttl", f"ttl must be a positive number of seconds up to {MAX_TTL_SECONDS}"
        )
    return ttl


def parse_revision(raw: str, source: str) -> int:
    return parse_uint(raw, source, "bad_revision", 1, MAX_REVISION)


def parse_prev_value(query: dict[str, str]) -> bytes | None:
    """`prev_value` (text) or `prev_value_base64` (any bytes), the value a CAS compares."""
    if "prev_value_base64" in query:
        try:
            return base64.b64decode(query["prev_value_base64"], validate=True)
        except ValueError:
            raise ApiError(400, "bad_prev_value", "prev_value_base64 is not valid base64") from None
    if "prev_value" in query:
        return query["prev_value"].encode()
    return None


def parse_condition(
    request: web.Request, query: dict[str, str], *, allow_exist: bool
) -> Condition | None:
    """At most one precondition, from the query or the If-Match / If-None-Match headers."""
    found = []
    if "prev_value" in query or "prev_value_base64" in query:
        if "prev_value" in query and "prev_value_base64" in query:
            raise ApiError(400, "bad_condition", "give prev_value or prev_value_base64, not both")
        found.append(commands.condition(prev_value=parse_prev_value(query)))
    if "prev_revision" in query:
        found.append(
            commands.condition(
                prev_revision=parse_revision(query["prev_revision"], "prev_revision")
            )
        )
    if "If-Match" in request.headers:
        tag = request.headers["If-Match"].strip()
        if len(tag) < 3 or not (tag.startswith('"') and tag.endswith('"')):
            raise ApiError(400, "bad_if_match", 'If-Match must be a quoted revision, e.g. "42"')
        found.append(commands.condition(prev_revision=parse_revision(tag[1:-1], "If-Match")))
    if "prev_exist" in query:
        value = query["prev_exist"]
        if value not in ("true", "false"):
            raise ApiError(400, "bad_prev_exist", "prev_exist must be true or false")
        found.append(commands.condition(prev_exist=value == "true"))
    if "If-None-Match" in request.headers:
        if not allow_exist:
            raise ApiError(
                400,
                "bad_if_none_match",
                f"If-None-Match does not apply to {request.method}; use If-Match or"
                " prev_revision / prev_value",
            )
        if request.headers["If-None-Match"].strip() != "*":
            raise ApiError(400, "bad_if_none_match", "only If-None-Match: * is supported")
        found.append(commands.condition(prev_exist=False))
    if len(found) > 1:
        raise ApiError(400, "bad_condition", "give at most one of the compare-and-swap conditions")
    return found[0] if found else None


def value_too_large(limit: int) -> ApiError:
    return ApiError(413, "value_too_large", f"the value is larger than {limit} bytes")


async def read_value(request: web.Request) -> bytes:
    limit = request.app[SERVICE].config.max_value_bytes
    return await read_body(request, limit, value_too_large(limit))


def expire_at_or_none(record_or_outcome: KeyRecord | Outcome) -> int | None:
    return record_or_outcome.expire_at_ms or None


def parse_lease(query: dict[str, str], ttl: float | None, when: Condition | None) -> int:
    """`?lease=ID`: the key lives and dies with that lease (instead of a ttl of its own)."""
    if "lease" not in query:
        return 0
    if ttl is not None:
        raise ApiError(400, "bad_lease", "give ttl or lease, not both")
    if when is not None:
        raise ApiError(
            400, "bad_lease", "a leased put takes no compare-and-swap condition; use POST /txn"
        )
    return parse_uint(query["lease"], "lease", "bad_lease", 1, MAX_REVISION)


# -- handlers ------------------------------------------------------------------------


async def put_key(request: web.Request) -> web.Response:
    key = parse_key(request)
    query = query_of(request, PUT_PARAMS)
    ttl = parse_ttl(query.get("ttl"))
    when = parse_condition(request, query, allow_exist=True)
    lease = parse_lease(query, ttl, when)
    request_id = parse_request_id(request)
    value = await read_value(request)
    request.app[SERVICE].refuse_over_quota(request_id)
    issued = wall_clock_ms()
    expire_at = issued + math.ceil(ttl * 1000) if ttl else 0
    outcome = await request.app[SERVICE].write(
        commands.put(
            key,
            value,
            issued_at_ms=issued,
            expire_at_ms=expire_at,
            when=when,
            request_id=request_id,
            lease=lease,
        )
    )
    if lease and outcome.status is Status.NOT_FOUND:
        raise lease_not_found(lease, outcome.log_index)
    if outcome.status is not Status.OK:
        raise write_failure(outcome, key)
    body = {
        "key": key,
        "revision": outcome.revision,
        "created": outcome.created,
        "expire_at": expire_at_or_none(outcome),
    }
    return json_response(
        201 if outcome.created else 200,
        body,
        {"X-KV-Revision": str(outcome.revision), **index_header(outcome.log_index)},
    )


async def consistent_read(request: web.Request, query: dict[str, str]) -> Service:
    mode = query.get("consistency", "linearizable")
    if mode not in CONSISTENCY_MODES:
        raise ApiError(
            400, "bad_consistency", f"consistency must be one of {', '.join(CONSISTENCY_MODES)}"
        )
    service = request.app[SERVICE]
    if mode == "linearizable" and not service.config.unsafe_local_reads:
        await service.read_barrier()
    return service


async def get_key(request: web.Request) -> web.StreamResponse:
    key = parse_key(request)
    if "watch" in request.query:
        return await watch(request, request.app[SERVICE], query_of(request, WATCH_PARAMS), key=key)
    service = await consistent_read(request, query_of(request, GET_PARAMS))
    record, index = service.get(key)
    if record is None:
        raise ApiError(404, "not_found", f"key {key!r} does not exist", index_header(index))
    headers = {
        "X-KV-Revision": str(record.mod_revision),
        "X-KV-Create-Revision": str(record.create_revision),
        **index_header(index),
    }
    if record.expire_at_ms:
        headers["X-KV-Expire-At"] = str(record.expire_at_ms)
    return web.Response(body=record.value, content_type="application/octet-stream", headers=headers)


async def delete_key(request: web.Request) -> web.Response:
    if not request.match_info["key"]:
        return await delete_keys(request)
    key = parse_key(request)
    when = parse_condition(request, query_of(request, DELETE_PARAMS), allow_exist=False)
    outcome = await request.app[SERVICE].write(
        commands.delete(
            key, issued_at_ms=wall_clock_ms(), when=when, request_id=parse_request_id(request)
        )
    )
    if outcome.status is not Status.OK:
        raise write_failure(outcome, key)
    return json_response(
        200,
        {"deleted": True, "revision": outcome.revision},
        {"X-KV-Revision": str(outcome.revision), **index_header(outcome.log_index)},
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
        service = await consistent_read(request, query)
        counted, index = service.count(prefix, end)
        return json_response(200, {"count": counted, "revision": index}, index_header(index))
    limit = parse_uint(
        query.get("limit", str(DEFAULT_LIST_LIMIT)), "limit", "bad_limit", 1, MAX_LIST_LIMIT
    )
    values = query.get("values", "false")
    if values not in ("true", "false"):
        raise ApiError(400, "bad_values", "values must be true or false")
    with_values = values == "true"
    service = await consistent_read(request, query)
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


def create_app(service: Service, *, body_timeout: float = BODY_TIMEOUT_SECONDS) -> web.Application:
    app = web.Application(
        middlewares=[errors_and_headers],
        client_max_size=service.config.max_value_bytes + 1,
    )
    app[SERVICE] = service
    app[METRICS] = Metrics(service)
    app[BODY_TIMEOUT] = body_timeout

    async def end_watches(app: web.Application) -> None:
        service.watches.end_all("shutting_down", "this node is stopping; resume on another node")

    app.on_shutdown.append(end_watches)
    app.router.add_get("/kv/", list_keys)
    app.router.add_get("/kv", list_keys)
    # [\s\S]: a key may hold any character, newlines included (`.` would stop at them).
    app.router.add_route("PUT", "/kv/{key:[\\s\\S]*}", put_key)
    app.router.add_route("GET", "/kv/{key:[\\s\\S]+}", get_key)
    app.router.add_route("DELETE", "/kv/{key:[\\s\\S]*}", delete_key)
    app.router.add_post("/txn", txn)
    add_lease_routes(app.router, SERVICE)
    add_membership_routes(app.router, SERVICE)
    add_token_routes(app.router, SERVICE, parse_request_id)
    app.router.add_get("/snapshot", snapshot)
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app
