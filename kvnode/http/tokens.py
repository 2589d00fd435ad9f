"""Access tokens over HTTP (admin only, see http/auth.py): create, list, revoke.

`POST /auth/tokens` takes `{"role", "prefixes"?, "id"?, "token"?}`. The node keeps only
the SHA-256 of the token's secret, replicated like any write. A client that brings its
own secret (`token`, as the CLI does) can retry under its request id and get the same
answer; without one the node draws a secret and shows it in this reply only.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from kvnode import commands
from kvnode.access import ROLES, secret_sha256
from kvnode.clock import wall_clock_ms
from kvnode.config import MAX_KEY_BYTES
from kvnode.http.request import (
    ApiError,
    index_header,
    json_response,
    parse_request_id,
    query_of,
    read_json,
)
from kvnode.service import Service, Status

TOKEN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 256
MAX_PREFIXES = 64
TOKEN_BODY_BYTES = 64 * 1024
NO_PARAMS: frozenset[str] = frozenset()


def parse_token_request(body: Any) -> tuple[str, str, list[str], str]:
    """(id, role, prefixes, secret) of a create request; 400 for anything else."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_token", "the body must be a JSON object")
    unknown = set(body) - {"id", "role", "prefixes", "token"}
    if unknown:
        raise ApiError(400, "bad_token", f"unknown field {sorted(unknown)[0]!r}")
    role = body.get("role")
    if role not in ROLES:
        raise ApiError(400, "bad_token", f"'role' must be one of {', '.join(ROLES)}")
    prefixes = body.get("prefixes", [])
    if (
        not isinstance(prefixes, list)
        or len(prefixes) > MAX_PREFIXES
        or not all(isinstance(p, str) and 0 < len(p.encode()) <= MAX_KEY_BYTES for p in prefixes)
    ):
        raise ApiError(
            400, "bad_token", f"'prefixes' must be a list of up to {MAX_PREFIXES} non-empty keys"
        )
    token_id = body.get("id", f"tok-{secrets.token_hex(4)}")
    if not isinstance(token_id, str) or not TOKEN_ID.fullmatch(token_id):
        raise ApiError(400, "bad_token", "'id' must be 1 to 64 of A-Z a-z 0-9 . _ -")
    secret = body.get("token", f"kvn_{secrets.token_urlsafe(32)}")
    if not isinstance(secret, str) or not MIN_SECRET_CHARS <= len(secret) <= MAX_SECRET_CHARS:
        raise ApiError(
            400,
            "bad_token",
            f"'token' must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters",
        )
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        raise ApiError(400, "bad_token", "'token' must be visible ASCII (it goes in a header)")
    return token_id, role, sorted(set(prefixes)), secret


def add_token_routes(router: web.UrlDispatcher, service_key: web.AppKey[Service]) -> None:
    async def create(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        service = request.app[service_key]
        if not service.config.auth_token:
            raise ApiError(
                409, "auth_disabled", "tokens take effect only with auth_token set on the nodes"
            )
        body = await read_json(request, TOKEN_BODY_BYTES, what="token", too_large="too_large")
        token_id, role, prefixes, secret = parse_token_request(body)
        request_id = parse_request_id(request)
        if request_id and "token" not in body:
            raise ApiError(
                400,
                "bad_token",
                "with an X-Request-Id, bring the secret ('token'): a retry must be answered"
                " with the secret the first attempt stored, which the node cannot recall",
            )
        outcome = await service.write(
            commands.token_create(
                token_id,
                secret_sha256(secret),
                role,
                prefixes,
                issued_at_ms=wall_clock_ms(),
                request_id=request_id,
            )
        )
        headers = index_header(outcome.log_index)
        if outcome.status is Status.COMPARE_FAILED:
            raise ApiError(409, "token_exists", f"a token {token_id!r} exists already", headers)
        reply = {"id": token_id, "token": secret, "role": role, "prefixes": prefixes}
        return json_response(201, reply, headers)

    async def list_tokens(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        tokens = request.app[service_key].tokens()
        return json_response(
            200,
            [
                {"id": token_id, "role": token.role, "prefixes": list(token.prefixes)}
                for token_id, token in sorted(tokens.items())
            ],
        )

    async def revoke(request: web.Request) -> web.Response:
        query_of(request, NO_PARAMS)
        token_id = request.match_info["id"]
        outcome = await request.app[service_key].write(
            commands.token_revoke(
                token_id, issued_at_ms=wall_clock_ms(), request_id=parse_request_id(request)
            )
        )
        headers = index_header(outcome.log_index)
        if outcome.status is Status.NOT_FOUND:
            raise ApiError(404, "token_not_found", f"no token {token_id!r}", headers)
        return json_response(200, {"revoked": True, "id": token_id}, headers)

    router.add_post("/auth/tokens", create)
    router.add_get("/auth/tokens", list_tokens)
    router.add_delete("/auth/tokens/{id}", revoke)
