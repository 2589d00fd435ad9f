"""Leases over HTTP: grant, keep alive, look up, revoke, list.

A lease is granted with a ttl and kept alive by its owner; the keys attached
to it (`PUT /kv/{key}?lease=ID`, or a txn put with `lease`) are deleted with
it, at one revision on every replica, when it is revoked or when the leader
finds its deadline passed. Its id is the revision that granted it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kvnode import commands
from kvnode.clock import wall_clock_ms
from kvnode.contract import MAX_TTL_SECONDS
from kvnode.http.request import (
    MAX_REVISION,
    ApiError,
    index_header,
    json_response,
    parse_seconds,
    parse_uint,
    query_of,
)
from kvnode.service import Outcome, Service, Status

NO_PARAMS: frozenset[str] = frozenset()


def lease_not_found(lease_id: int, index: int) -> ApiError:
    return ApiError(
        404,
        "lease_not_found",
        f"lease {lease_id} does not exist (it expired, was revoked, or never was)",
        index_header(index),
    )


def lease_json(lease_id: int, ttl_ms: int, expire_at_ms: int) -> dict[str, Any]:
    return {"id": lease_id, "ttl": ttl_ms / 1000, "expire_at": expire_at_ms}


def lease_id_of(request: web.Request) -> int:
    return parse_uint(request.match_info["id"], "lease id", "bad_lease", 1, MAX_REVISION)


def add_lease_routes(router: web.UrlDispatcher, service_key: web.AppKey[Service]) -> None:
    async def grant(request: web.Request) -> web.Response:
        query = query_of(request, frozenset({"ttl"}))
        if "ttl" not in query:
            raise ApiError(400, "bad_ttl", "a lease needs ?ttl=SECONDS")
        ttl = parse_seconds(query["ttl"], "ttl", "bad_ttl", 0.001, MAX_TTL_SECONDS)
        ttl_ms = math.ceil(ttl * 1000)
        outcome = await request.app[service_key].write(
            commands.lease_grant(ttl_ms, issued_at_ms=wall_clock_ms())
        )
        body = lease_json(outcome.revision, ttl_ms, outcome.expire_at_ms)
        return json_response(201, body, index_header(outcome.log_index))

    async def change(
        request: web.Request, build: Callable[[int, int], bytes]
    ) -> tuple[int, Outcome]:
        """Apply `build(lease_id, now)` to the lease in the path; 404 if it is gone."""
        query_of(request, NO_PARAMS)
        lease_id = lease_id_of(request)
        outcome = await request.app[service_key].write(build(lease_id, wall_clock_ms()))
        if outcome.status is not Status.OK:
            raise lease_not_found(lease_id, outcome.log_index)
        return lease_id, outcome

    async def keepalive(request: web.Request) -> web.Response:
        lease_id, outcome = await change(
            request, lambda lease_id, now: commands.lease_keepalive(lease_id, issued_at_ms=now)
        )
        lease, _keys, _index = request.app[service_key].lease(lease_id)
        body = lease_json(lease_id, lease.ttl_ms if lease else 0, outcome.expire_at_ms)
        return json_response(200, body, index_header(outcome.log_index))

    async def revoke(request: web.Request) -> web.Response:
        _lease_id, outcome = await change(
            request, lambda lease_id, now: commands.lease_revoke(lease_id, issued_at_ms=now)
        )
        body = {"revoked": True, "revision": outcome.revision}
        return json_response(200, body, index_header(outcome.log_index))

    async def look_up(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        lease_id = lease_id_of(request)
        service = request.app[service_key]
        await service.read_barrier()
        lease, keys, index = service.lease(lease_id)
        if lease is None:
            raise lease_not_found(lease_id, index)
        remaining = max(0.0, (lease.expire_at_ms - wall_clock_ms()) / 1000)
        body = {**lease_json(lease_id, lease.ttl_ms, lease.expire_at_ms), "keys": keys}
        body["remaining"] = round(remaining, 3)
        return json_response(200, body, index_header(index))

    async def list_all(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        service = request.app[service_key]
        await service.read_barrier()
        leases, index = service.leases()
        body = [
            lease_json(lease_id, lease.ttl_ms, lease.expire_at_ms) for lease_id, lease in leases
        ]
        return json_response(200, body, index_header(index))

    router.add_post("/lease", grant)
    router.add_get("/lease/", list_all)
    router.add_get("/lease", list_all)
    router.add_post("/lease/{id}/keepalive", keepalive)
    router.add_get("/lease/{id}", look_up)
    router.add_delete("/lease/{id}", revoke)
