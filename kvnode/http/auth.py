"""Authentication and authorization of a request (see kvnode/access.py for grants).

With `auth_token` unset, every request may do everything. With it set, a request names
a token in `Authorization: Bearer <token>`; an unknown one is `401`, and one whose role
or key prefixes do not cover the request is `403 forbidden`. What each route needs:

| route | needs |
|---|---|
| `/health`, `/ready` | nothing (probes carry no token) |
| `/ui` (the console's page) | nothing (it holds no data; what it shows, it asks with a token) |
| `/status` | any token |
| `/metrics` | `metrics` or `admin` |
| `GET /kv/{key}`, `GET /kv/?prefix=P` (lists, counts, watches) | `read`, covering the key or P |
| `PUT`, `DELETE /kv/{key}`, `DELETE /kv/?prefix=P` | `readwrite`, covering the key or P |
| `POST /txn` | `read` for compares, gets and lists, `readwrite` to write; every key covered |
| `/lease...` | `read` to look, `readwrite` to change; and no prefixes (its keys: anywhere) |
| `GET /cluster/members` | `read`; changing members `admin` |
| `/snapshot`, `/auth/tokens...` | `admin` |
"""

from __future__ import annotations

from aiohttp import hdrs, web

from kvnode.access import ROOT, Grant
from kvnode.commands_pb2 import Txn
from kvnode.http.console import is_console
from kvnode.http.request import ApiError, HttpRequest, parse_key
from kvnode.service import Service

UNAUTHENTICATED_PATHS = frozenset({"/health", "/ready"})
GRANT = web.RequestKey("grant", Grant)  # what the request's token may do


def authenticate(request: HttpRequest, service: Service) -> Grant:
    """The request's grant: ROOT when auth is off (or on an open path)."""
    if not service.config.auth_token:
        return ROOT
    path = request.path
    if path in UNAUTHENTICATED_PATHS or is_console(path):
        return ROOT
    scheme, _, secret = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    grant = service.grant_for(secret) if scheme == "Bearer" and secret else None
    if grant is None:
        raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer <token>' is required")
    return grant


def authorize(request: web.Request, grant: Grant) -> None:
    """Refuse (403) what the route needs and the grant lacks; a transaction's keys are
    checked once it is parsed (check_txn)."""
    if grant is ROOT:
        return
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    reading = request.method in ("GET", "HEAD")
    if route == "/metrics":
        allowed = grant.role in ("metrics", "admin")
    elif route == "/status" or not route:
        allowed = True  # an unmatched route is a 404 or 405 for anyone
    elif route.startswith("/kv"):
        subject = parse_key(request) if request.match_info.get("key") else _prefix(request)
        authorize_keys(request, grant, subject)
        return
    elif route == "/txn":
        allowed = grant.reads
    elif route.startswith("/lease"):
        allowed = (grant.reads if reading else grant.writes) and not grant.prefixes
    elif route.startswith("/cluster/members"):
        allowed = grant.reads if reading else grant.admin
    else:  # /snapshot, /auth/tokens
        allowed = grant.admin
    if not allowed:
        raise forbidden(grant, f"{request.method} {request.path}")


def authorize_keys(request: HttpRequest, grant: Grant, subject: str) -> None:
    """A read of a key or prefix needs a reading role, a change a writing one; either, a
    grant that covers it."""
    if grant is ROOT:
        return
    reading = request.method in ("GET", "HEAD")
    if not ((grant.reads if reading else grant.writes) and grant.covers(subject)):
        raise forbidden(grant, f"{request.method} {request.path}")


def check_txn(grant: Grant, txn: Txn) -> None:
    """Every key a transaction compares, reads or writes must be covered, and a write
    needs a writing role."""
    if grant is ROOT:
        return
    for compare in txn.compare:
        if not grant.covers(compare.key):
            raise forbidden(grant, f"compare {compare.key!r}")
    for op in (*txn.success, *txn.failure):
        kind = op.WhichOneof("op")
        subject = {
            "put": op.put.key,
            "delete": op.delete.key,
            "delete_prefix": op.delete_prefix.prefix,
            "get": op.get.key,
            "list": op.list.prefix,
        }[kind or "get"]
        writes = kind in ("put", "delete", "delete_prefix")
        if (writes and not grant.writes) or not grant.covers(subject):
            raise forbidden(grant, f"{kind} {subject!r}")


def forbidden(grant: Grant, what: str) -> ApiError:
    scope = f" limited to {', '.join(map(repr, grant.prefixes))}" if grant.prefixes else ""
    return ApiError(
        403, "forbidden", f"token {grant.token_id!r} ({grant.role}{scope}) may not {what}"
    )


def _prefix(request: web.Request) -> str:
    """The prefix a list, count, watch or range delete names ("" for none: every key)."""
    values = request.query.getall("prefix", [])
    return values[0] if len(values) == 1 else ""
