"""`POST /txn`: multi-key transactions over HTTP (JSON in, JSON out).

The body is `{"compare":[...], "success":[...], "failure":[...]}`; it is
validated here completely (a bad item is a 400 naming it) and proposed as one
`Txn` command, so the compares and the chosen branch are applied atomically
at one revision on every replica (see kvnode.storage.txn).
"""

from __future__ import annotations

import base64
import math
from typing import Any

from aiohttp import web

from kvnode import commands
from kvnode.clock import wall_clock_ms
from kvnode.commands_pb2 import Compare, DeletePrefix, KeyState, Txn, TxnOp, TxnReply
from kvnode.config import MAX_KEY_BYTES
from kvnode.contract import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, MAX_TTL_SECONDS, value_fields
from kvnode.http.auth import GRANT, check_txn
from kvnode.http.request import (
    MAX_REVISION,
    ApiError,
    index_header,
    json_response,
    read_json,
    write_failure,
)
from kvnode.service import Outcome, Service, Status
from kvnode.storage.outcome import MAX_TXN_REPLY_BYTES

TARGETS = {
    "value": Compare.VALUE,
    "revision": Compare.REVISION,
    "create_revision": Compare.CREATE_REVISION,
    "exists": Compare.EXISTS,
}
OPERATORS = {
    "==": Compare.EQUAL,
    "!=": Compare.NOT_EQUAL,
    "<": Compare.LESS,
    ">": Compare.GREATER,
}
OP_KINDS = ("put", "delete", "delete_prefix", "get", "list")
BRANCHES = ("success", "failure")
BODY_OVERHEAD_BYTES = 64 * 1024  # JSON around the values of a transaction


def bad(where: str, message: str) -> ApiError:
    return ApiError(400, "bad_txn", f"{where}: {message}", at=where)


def text(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise bad(where, f"{name!r} must be a string")
    return value


def key_of(item: dict[str, Any], where: str, name: str = "key") -> str:
    key = text(item, name, where)
    if name == "key" and not key:
        raise bad(where, "the key is empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise bad(where, f"the {name} is longer than {MAX_KEY_BYTES} bytes")
    return key


def value_of(item: dict[str, Any], where: str) -> bytes:
    """`value` (text) or `value_base64` (any bytes): exactly one."""
    if ("value" in item) == ("value_base64" in item):
        raise bad(where, "give one of 'value' or 'value_base64'")
    if "value" in item:
        return text(item, "value", where).encode()
    try:
        return base64.b64decode(text(item, "value_base64", where), validate=True)
    except ValueError:
        raise bad(where, "'value_base64' is not valid base64") from None


def number(item: dict[str, Any], name: str, where: str, maximum: int, minimum: int = 0) -> int:
    value = item.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise bad(where, f"{name!r} must be an integer from {minimum} to {maximum}")
    return value


def only_fields(item: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise bad(where, "must be a JSON object")
    unknown = set(item) - allowed
    if unknown:
        raise bad(
            where, f"unknown field {sorted(unknown)[0]!r} (takes {', '.join(sorted(allowed))})"
        )
    return item


def parse_compare(raw: Any, where: str) -> Compare:
    item = only_fields(raw, {"key", "target", "op", "value", "value_base64"}, where)
    target = item.get("target")
    op = item.get("op")
    if target not in TARGETS:
        raise bad(where, f"'target' must be one of {', '.join(TARGETS)}")
    if op not in OPERATORS:
        raise bad(where, f"'op' must be one of {', '.join(OPERATORS)}")
    compare = Compare(key=key_of(item, where), target=TARGETS[target], op=OPERATORS[op])
    if target == "value":
        compare.value = value_of(item, where)
    elif target == "exists":
        if not isinstance(item.get("value"), bool):
            raise bad(where, "'value' must be true or false for target exists")
    else:
        compare.number = number(item, "value", where, MAX_REVISION)
    if target == "exists":
        compare.exists = item["value"]
    return compare


def parse_op(raw: Any, where: str, issued_at_ms: int) -> TxnOp:
    item = only_fields(raw, set(OP_KINDS), where)
    if len(item) != 1:
        raise bad(where, f"give exactly one of {', '.join(OP_KINDS)}")
    ((kind, body),) = item.items()
    where = f"{where}.{kind}"
    op = TxnOp()
    if kind == "put":
        fields = only_fields(body, {"key", "value", "value_base64", "ttl", "lease"}, where)
        op.put.key, op.put.value = key_of(fields, where), value_of(fields, where)
        if "ttl" in fields and "lease" in fields:
            raise bad(where, "give 'ttl' or 'lease', not both (a leased key lives with its lease)")
        if "ttl" in fields:
            ttl = fields["ttl"]
            if (
                not isinstance(ttl, int | float)
                or isinstance(ttl, bool)
                or not 0 < ttl <= MAX_TTL_SECONDS
            ):
                raise bad(
                    where, f"'ttl' must be a positive number of seconds up to {MAX_TTL_SECONDS}"
                )
            op.put.expire_at_ms = issued_at_ms + math.ceil(ttl * 1000)
        if "lease" in fields:
            op.put.lease = number(fields, "lease", where, MAX_REVISION, minimum=1)
    elif kind == "delete":
        op.delete.key = key_of(only_fields(body, {"key"}, where), where)
    elif kind == "delete_prefix":
        fields = only_fields(body, {"prefix", "end"}, where)
        op.delete_prefix.prefix = key_of(fields, where, "prefix")
        op.delete_prefix.end = range_end(fields, where)
        if not op.delete_prefix.prefix and not op.delete_prefix.end:
            raise bad(where, "an empty prefix without an end would delete every key")
    elif kind == "get":
        op.get.key = key_of(only_fields(body, {"key"}, where), where)
    else:
        fields = only_fields(body, {"prefix", "limit", "end"}, where)
        op.list.prefix = key_of(fields, where, "prefix")
        op.list.end = range_end(fields, where)
        op.list.limit = DEFAULT_LIST_LIMIT
        if "limit" in fields:
            op.list.limit = number(fields, "limit", where, MAX_LIST_LIMIT, minimum=1)
    return op


def range_end(fields: dict[str, Any], where: str) -> str:
    """The optional exclusive `end` of a delete_prefix or list ("" = none)."""
    return key_of(fields, where, "end") if "end" in fields else ""


def check_branch(ops: list[TxnOp], name: str) -> None:
    """A key changed twice in one branch (put, delete, or under a delete_prefix) would
    make two events and an order-dependent result: refused."""
    written: set[str] = set()
    prefixes: list[str] = []
    for op in ops:
        kind = op.WhichOneof("op")
        if kind in ("put", "delete"):
            key = op.put.key if kind == "put" else op.delete.key
            if key in written:
                raise bad(name, f"the key {key!r} is written twice")
            written.add(key)
        elif kind == "delete_prefix":
            prefixes.append(op.delete_prefix.prefix)
    for prefix in prefixes:
        overlap = [key for key in written if key.startswith(prefix)]
        if overlap or sum(p.startswith(prefix) or prefix.startswith(p) for p in prefixes) > 1:
            raise bad(name, f"delete_prefix {prefix!r} overlaps another write of this branch")


def parse_txn(raw: Any, max_ops: int, issued_at_ms: int) -> Txn:
    body = only_fields(raw, {"compare", *BRANCHES}, "body")
    txn = Txn()
    lists = {name: body.get(name, []) for name in ("compare", *BRANCHES)}
    for name, items in lists.items():
        if not isinstance(items, list):
            raise bad(name, "must be a JSON list")
        if len(items) > max_ops:
            raise bad(
                name, f"{len(items)} items; a transaction takes at most {max_ops} (max_txn_ops)"
            )
    txn.compare.extend(parse_compare(c, f"compare[{i}]") for i, c in enumerate(lists["compare"]))
    for name in BRANCHES:
        ops = [parse_op(op, f"{name}[{i}]", issued_at_ms) for i, op in enumerate(lists[name])]
        check_branch(ops, name)
        getattr(txn, name).extend(ops)
    return txn


def found_json(state: KeyState) -> dict[str, Any]:
    return {
        "key": state.key,
        **value_fields(state.value),
        "revision": state.mod_revision,
        "create_revision": state.create_revision,
        "expire_at": state.expire_at_ms or None,
        "lease": state.lease or None,
    }


def reply_json(txn: Txn, outcome: Outcome) -> dict[str, Any]:
    """The reply of an applied transaction, from the TxnReply it recorded."""
    reply = TxnReply.FromString(outcome.detail)
    branch = txn.success if reply.succeeded else txn.failure
    responses: list[dict[str, Any]] = []
    for op, done in zip(branch, reply.replies, strict=True):
        kind = op.WhichOneof("op")
        if kind == "put":
            responses.append({"put": {"revision": done.revision, "created": done.created}})
        elif kind in ("delete", "delete_prefix"):
            responses.append({kind: {"deleted": done.deleted}})
        elif kind == "get":
            got: dict[str, Any] = {"key": op.get.key, "found": bool(done.found)}
            if done.found:
                got.update(found_json(done.found[0]))
            responses.append({"get": got})
        else:
            items = [found_json(state) for state in done.found]
            responses.append({"list": {"items": items, "more": done.more}})
    return {"succeeded": reply.succeeded, "revision": outcome.revision, "responses": responses}


async def post_txn(request: web.Request, service: Service, request_id: str) -> web.Response:
    limit = service.config.max_value_bytes + BODY_OVERHEAD_BYTES
    issued = wall_clock_ms()
    body = await read_json(request, limit, what="transaction", too_large="txn_too_large")
    txn = parse_txn(body, service.config.max_txn_ops, issued)
    check_txn(request[GRANT], txn)
    if any(op.WhichOneof("op") == "put" for op in (*txn.success, *txn.failure)):
        service.refuse_over_quota(request_id)
    outcome = await service.write(commands.txn(txn, issued_at_ms=issued, request_id=request_id))
    headers = index_header(outcome.log_index)
    if outcome.status is Status.NOT_FOUND:
        raise ApiError(404, "lease_not_found", "a put names a lease that does not exist", headers)
    if outcome.status is Status.TOO_LARGE:
        raise ApiError(
            413,
            "txn_reply_too_large",
            f"the reply would pass {MAX_TXN_REPLY_BYTES} bytes; nothing was applied (list"
            " with a smaller limit, or split the transaction)",
            headers,
        )
    if outcome.status is not Status.OK:
        raise write_failure(outcome, "")
    return json_response(200, reply_json(txn, outcome), headers)


async def delete_range(
    service: Service, prefix: str, end: str, request_id: str
) -> tuple[int, Outcome]:
    """`DELETE /kv/?prefix=P&end=E&confirm=true`: every key under the prefix (and before
    the end) at one revision, as a one-op transaction (the same entry a txn's
    delete_prefix makes). Returns how many keys it deleted."""
    txn = Txn()
    txn.success.add().delete_prefix.CopyFrom(DeletePrefix(prefix=prefix, end=end))
    issued = wall_clock_ms()
    outcome = await service.write(commands.txn(txn, issued_at_ms=issued, request_id=request_id))
    if outcome.status is not Status.OK:
        raise write_failure(outcome, prefix)
    (done,) = TxnReply.FromString(outcome.detail).replies
    return done.deleted, outcome
