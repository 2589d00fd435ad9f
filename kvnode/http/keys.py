"""One key at a time: `GET`/`HEAD`, `PUT` and `DELETE /kv/{key}`, with TTLs, leases and
compare-and-swap conditions. The handlers take the request, the service and the key
(parsed once, for the permission check too) and return a `Reply`; kvnode.http.lean
writes it (these routes skip aiohttp's per-request objects)."""

from __future__ import annotations

import base64
import math
from collections.abc import Awaitable, Mapping

from aiohttp import hdrs

from kvnode import commands
from kvnode.clock import wall_clock_ms
from kvnode.commands_pb2 import Condition
from kvnode.contract import CONSISTENCY_MODES, MAX_TTL_SECONDS
from kvnode.http.lease import lease_not_found
from kvnode.http.request import (
    ASCII_SECONDS,
    INDEX_HEADER,
    MAX_REVISION,
    ApiError,
    HttpRequest,
    Reply,
    body_if_whole,
    index_header,
    json_reply,
    parse_request_id,
    parse_uint,
    query_of,
    read_rest_of_body,
    write_failure,
)
from kvnode.service import KeyRecord, Outcome, Service, Status

# The query parameters each route takes; any other, or any given twice, is a 400.
PUT_PARAMS = frozenset(
    {"ttl", "lease", "prev_value", "prev_value_base64", "prev_revision", "prev_exist"}
)
GET_PARAMS = frozenset({"consistency"})
DELETE_PARAMS = frozenset({"prev_value", "prev_value_base64", "prev_revision"})


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
    request: HttpRequest, query: dict[str, str], *, allow_exist: bool
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
    if hdrs.IF_MATCH in request.headers:
        tag = request.headers[hdrs.IF_MATCH].strip()
        if len(tag) < 3 or not (tag.startswith('"') and tag.endswith('"')):
            raise ApiError(400, "bad_if_match", 'If-Match must be a quoted revision, e.g. "42"')
        found.append(commands.condition(prev_revision=parse_revision(tag[1:-1], "If-Match")))
    if "prev_exist" in query:
        value = query["prev_exist"]
        if value not in ("true", "false"):
            raise ApiError(400, "bad_prev_exist", "prev_exist must be true or false")
        found.append(commands.condition(prev_exist=value == "true"))
    if hdrs.IF_NONE_MATCH in request.headers:
        if not allow_exist:
            raise ApiError(
                400,
                "bad_if_none_match",
                f"If-None-Match does not apply to {request.method}; use If-Match or"
                " prev_revision / prev_value",
            )
        if request.headers[hdrs.IF_NONE_MATCH].strip() != "*":
            raise ApiError(400, "bad_if_none_match", "only If-None-Match: * is supported")
        found.append(commands.condition(prev_exist=False))
    if len(found) > 1:
        raise ApiError(400, "bad_condition", "give at most one of the compare-and-swap conditions")
    return found[0] if found else None


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


# The queries a read of one key usually has, parsed once (as query_of parses them; shared,
# so read only). Any other query goes through query_of, which refuses it with the reason.
READ_QUERIES: dict[str, Mapping[str, str]] = {"": {}} | {
    f"consistency={mode}": {"consistency": mode} for mode in CONSISTENCY_MODES
}


def needs_barrier(service: Service, query: Mapping[str, str]) -> bool:
    """Whether the read must first wait until this node has applied everything committed
    when it arrived (a read index round): not with `consistency=stale`. A plain function,
    so a stale read makes no coroutine."""
    mode = query.get("consistency", "linearizable")
    if mode not in CONSISTENCY_MODES:
        raise ApiError(
            400, "bad_consistency", f"consistency must be one of {', '.join(CONSISTENCY_MODES)}"
        )
    return mode == "linearizable" and not service.config.unsafe_local_reads


async def consistent_read(service: Service, query: dict[str, str]) -> None:
    """Wait, unless the read asks for `consistency=stale`, until this node has applied
    everything committed when the read arrived (a read index round)."""
    if needs_barrier(service, query):
        await service.read_barrier()


async def put_key(request: HttpRequest, service: Service, key: str) -> Reply:
    query = query_of(request, PUT_PARAMS)
    ttl = parse_ttl(query.get("ttl"))
    when = parse_condition(request, query, allow_exist=True)
    lease = parse_lease(query, ttl, when)
    request_id = parse_request_id(request)
    limit = service.config.max_value_bytes
    value = body_if_whole(request, limit, what="value", too_large="value_too_large")
    if value is None:
        value = await read_rest_of_body(
            request, limit, service.config.body_timeout, what="value", too_large="value_too_large"
        )
    service.refuse_over_quota(request_id)
    issued = wall_clock_ms()
    expire_at = issued + math.ceil(ttl * 1000) if ttl else 0
    outcome = await service.write(
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
    return json_reply(
        201 if outcome.created else 200,
        body,
        {"X-KV-Revision": str(outcome.revision), **index_header(outcome.log_index)},
    )


def get_key(request: HttpRequest, service: Service, key: str) -> Reply | Awaitable[Reply]:
    """The value as the body, its revisions (and deadline) in headers; `HEAD` the same
    without the body. A read that needs no barrier (`consistency=stale`, most reads) is
    answered here and now: no coroutine, no task."""
    query = READ_QUERIES.get(request.rel_url.raw_query_string)
    if query is None:  # not one of the usual queries: checked in full (and maybe refused)
        query = query_of(request, GET_PARAMS)
    if needs_barrier(service, query):
        return _get_after_barrier(service, key)
    return _read_key(service, key)


async def _get_after_barrier(service: Service, key: str) -> Reply:
    await service.read_barrier()
    return _read_key(service, key)


def _read_key(service: Service, key: str) -> Reply:
    record, index = service.get(key)
    if record is None:
        raise ApiError(404, "not_found", f"key {key!r} does not exist", index_header(index))
    headers = {
        "X-KV-Revision": str(record.mod_revision),
        "X-KV-Create-Revision": str(record.create_revision),
        INDEX_HEADER: str(index),  # index_header's, without a dict to merge on every read
    }
    if record.expire_at_ms:
        headers["X-KV-Expire-At"] = str(record.expire_at_ms)
    if record.lease:
        headers["X-KV-Lease"] = str(record.lease)
    return Reply(200, record.value, headers, "application/octet-stream")


async def delete_key(request: HttpRequest, service: Service, key: str) -> Reply:
    when = parse_condition(request, query_of(request, DELETE_PARAMS), allow_exist=False)
    outcome = await service.write(
        commands.delete(
            key, issued_at_ms=wall_clock_ms(), when=when, request_id=parse_request_id(request)
        )
    )
    if outcome.status is not Status.OK:
        raise write_failure(outcome, key)
    return json_reply(
        200,
        {"deleted": True, "revision": outcome.revision},
        {"X-KV-Revision": str(outcome.revision), **index_header(outcome.log_index)},
    )
