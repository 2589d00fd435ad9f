"""Membership over HTTP: `GET /cluster/members`, `POST /cluster/members`,
`DELETE /cluster/members/{id}` (see kvnode.service.membership for the rules).

A change asked of a follower is answered `307` with `Location` on the leader
(and the JSON body `not_leader` naming it), so `curl -L` and kvnode's client
land where the change can be made; 503 `no_leader` while none is known.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from kvnode.config import ConfigError, split_address, split_url
from kvnode.http.request import ApiError, json_response, query_of, read_json
from kvnode.service import Service
from kvnode.service.membership import MembershipRefused, NotLeader

MAX_MEMBER_BODY_BYTES = 4096
MEMBER_FIELDS = frozenset({"raft_addr", "http_url", "id"})
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
NO_PARAMS: frozenset[str] = frozenset()


def parse_member(body: Any) -> tuple[str, str, str]:
    """(raft_addr, http_url, id) from a `POST /cluster/members` body; 400 naming the field."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_member", 'the body must be {"raft_addr": ..., "http_url": ...}')
    unknown = sorted(set(body) - MEMBER_FIELDS)
    if unknown:
        raise ApiError(
            400, "bad_member", f"unknown field {unknown[0]!r} (fields: raft_addr, http_url, id)"
        )
    for name in ("raft_addr", "http_url"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ApiError(400, "bad_member", f"{name} is required (a string)", field=name)
    node_id = body.get("id", "")
    if not isinstance(node_id, str) or (node_id and not NODE_ID.fullmatch(node_id)):
        raise ApiError(
            400, "bad_member", "id must be up to 64 letters, digits, '-' or '_'", field="id"
        )
    try:
        split_address(body["raft_addr"], "raft_addr")
        split_url(body["http_url"], "http_url")
    except ConfigError as exc:
        raise ApiError(400, "bad_member", str(exc)) from None
    return body["raft_addr"], body["http_url"].rstrip("/"), node_id


def refused(exc: MembershipRefused) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, **exc.extra)


def to_leader(request: web.Request, exc: NotLeader) -> ApiError:
    if exc.leader_url is None:
        known = (
            f"the leader ({exc.leader}) has not published its URL yet"
            if exc.leader
            else "none is known"
        )
        return ApiError(
            503,
            "no_leader",
            f"membership changes are made by the leader, and {known}; retry",
            {"Retry-After": "1"},
        )
    location = exc.leader_url + request.path_qs
    return ApiError(
        307,
        "not_leader",
        f"membership changes are made by the leader: {exc.leader_url}",
        {"Location": location},
        leader=exc.leader_url,
    )


def add_membership_routes(router: web.UrlDispatcher, service_key: web.AppKey[Service]) -> None:
    async def list_members(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        return json_response(200, request.app[service_key].membership.members())

    async def add_member(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        membership = request.app[service_key].membership
        body = await read_json(
            request, MAX_MEMBER_BODY_BYTES, what="member", too_large="member_too_large"
        )
        raft_addr, http_url, node_id = parse_member(body)
        try:
            member = await membership.add(raft_addr, http_url, node_id)
        except MembershipRefused as exc:
            raise refused(exc) from None
        except NotLeader as exc:
            raise to_leader(request, exc) from None
        return json_response(201, {"member": member, "members": membership.members()})

    async def remove_member(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        membership = request.app[service_key].membership
        try:
            removed = await membership.remove(request.match_info["id"])
        except MembershipRefused as exc:
            raise refused(exc) from None
        except NotLeader as exc:
            raise to_leader(request, exc) from None
        return json_response(200, {"removed": removed, "members": membership.members()})

    router.add_get("/cluster/members", list_members)
    router.add_post("/cluster/members", add_member)
    router.add_delete("/cluster/members/{id}", remove_member)
