"""Builders for the replicated commands, so every proposer encodes them the same way.

Each builder returns the protobuf-encoded `kvnode.Command` that goes into the
Raft log. Times are absolute Unix milliseconds from the proposer's clock: the
state machine never reads a clock of its own.
"""

from __future__ import annotations

import hashlib

from kvnode.commands_pb2 import Command, Condition, Txn

FINGERPRINT_BYTES = 16


def fingerprint(method: str, key: str, value: bytes, when: Condition | None, ttl_ms: int) -> bytes:
    """What a request asked for, independent of when it was made: a retry of the same
    request has the same fingerprint, any other request under the same id does not."""
    digest = hashlib.blake2b(digest_size=FINGERPRINT_BYTES)
    for part in (
        method.encode(),
        key.encode(),
        hashlib.sha256(value).digest(),
        when.SerializeToString() if when is not None else b"-",
        str(ttl_ms).encode(),
    ):
        digest.update(len(part).to_bytes(4, "little"))
        digest.update(part)
    return digest.digest()


def condition(
    *,
    prev_value: bytes | None = None,
    prev_revision: int | None = None,
    prev_exist: bool | None = None,
) -> Condition | None:
    """At most one test; None when no test is given (an unconditional write)."""
    given = [x is not None for x in (prev_value, prev_revision, prev_exist)]
    if sum(given) > 1:
        raise ValueError("a condition tests one of prev_value, prev_revision, prev_exist")
    if prev_value is not None:
        return Condition(prev_value=prev_value)
    if prev_revision is not None:
        return Condition(prev_revision=prev_revision)
    if prev_exist is not None:
        return Condition(prev_exist=prev_exist)
    return None


def put(
    key: str,
    value: bytes,
    *,
    issued_at_ms: int,
    expire_at_ms: int = 0,
    when: Condition | None = None,
    request_id: str = "",
    lease: int = 0,
) -> bytes:
    """A PUT (attached to `lease` if given), or a compare-and-swap when `when` is given.
    Each write is built here, on the event loop: the sub-message is looked up once (every
    `command.put` makes a new wrapper), which makes this about a quarter cheaper."""
    command = Command(issued_at_ms=issued_at_ms)
    if request_id:
        command.request_id = request_id
        ttl_ms = expire_at_ms - issued_at_ms if expire_at_ms else 0
        method = f"PUT lease={lease}" if lease else "PUT"
        command.request_fingerprint = fingerprint(method, key, value, when, ttl_ms)
    if when is None:
        put = command.put
        put.key = key
        put.value = value
        put.expire_at_ms = expire_at_ms
        put.lease = lease
    else:
        cas = command.cas
        cas.key = key
        cas.value = value
        cas.expire_at_ms = expire_at_ms
        cas.condition.CopyFrom(when)
    return command.SerializeToString()


def delete(
    key: str,
    *,
    issued_at_ms: int,
    when: Condition | None = None,
    request_id: str = "",
) -> bytes:
    command = Command(issued_at_ms=issued_at_ms, request_id=request_id)
    if request_id:
        command.request_fingerprint = fingerprint("DELETE", key, b"", when, 0)
    command.delete.key = key
    if when is not None:
        command.delete.condition.CopyFrom(when)
    return command.SerializeToString()


def expire(now_ms: int) -> bytes:
    command = Command(issued_at_ms=now_ms)
    command.expire.now_ms = now_ms
    return command.SerializeToString()


def noop(issued_at_ms: int = 0) -> bytes:
    command = Command(issued_at_ms=issued_at_ms)
    command.noop.SetInParent()
    return command.SerializeToString()


def txn(body: Txn, *, issued_at_ms: int, request_id: str = "") -> bytes:
    """A transaction (see commands.proto: Txn)."""
    command = Command(issued_at_ms=issued_at_ms, request_id=request_id)
    command.txn.CopyFrom(body)
    if request_id:
        command.request_fingerprint = fingerprint("TXN", "", body.SerializeToString(), None, 0)
    return command.SerializeToString()


def lease_grant(ttl_ms: int, *, issued_at_ms: int, request_id: str = "") -> bytes:
    command = Command(issued_at_ms=issued_at_ms, request_id=request_id)
    command.lease_grant.ttl_ms = ttl_ms
    if request_id:
        command.request_fingerprint = fingerprint("LEASE", "", b"", None, ttl_ms)
    return command.SerializeToString()


def lease_keepalive(lease_id: int, *, issued_at_ms: int) -> bytes:
    command = Command(issued_at_ms=issued_at_ms)
    command.lease_keepalive.id = lease_id
    return command.SerializeToString()


def lease_revoke(lease_id: int, *, issued_at_ms: int) -> bytes:
    command = Command(issued_at_ms=issued_at_ms)
    command.lease_revoke.id = lease_id
    return command.SerializeToString()


def lease_renew_all(extend_ms: int, *, issued_at_ms: int) -> bytes:
    command = Command(issued_at_ms=issued_at_ms)
    command.lease_renew_all.extend_ms = extend_ms
    return command.SerializeToString()


def member_publish(raft_addr: str, node_id: str, http_url: str, *, issued_at_ms: int) -> bytes:
    """Records how to reach the member at `raft_addr` (the member directory)."""
    command = Command(issued_at_ms=issued_at_ms)
    command.member_publish.raft_addr = raft_addr
    command.member_publish.node_id = node_id
    command.member_publish.http_url = http_url
    return command.SerializeToString()


def cluster_init(cluster_id: str, *, issued_at_ms: int) -> bytes:
    """Names the cluster, if it has no name yet."""
    command = Command(issued_at_ms=issued_at_ms)
    command.cluster_init.cluster_id = cluster_id
    return command.SerializeToString()


def member_forget(raft_addr: str, *, issued_at_ms: int) -> bytes:
    command = Command(issued_at_ms=issued_at_ms)
    command.member_forget.raft_addr = raft_addr
    return command.SerializeToString()


def batch(encoded: list[bytes]) -> bytes:
    """Several encoded commands as one log entry (see commands.proto: Batch)."""
    command = Command()
    command.batch.commands.extend(encoded)
    return command.SerializeToString()


def token_create(
    token_id: str,
    secret_sha256: bytes,
    role: str,
    prefixes: list[str],
    *,
    issued_at_ms: int,
    request_id: str = "",
) -> bytes:
    """An access token (only the secret's hash travels and is stored)."""
    command = Command(issued_at_ms=issued_at_ms, request_id=request_id)
    create = command.token_create
    create.id, create.secret_sha256, create.role = token_id, secret_sha256, role
    create.prefixes.extend(prefixes)
    if request_id:
        command.request_fingerprint = fingerprint(
            "TOKEN", token_id, create.SerializeToString(), None, 0
        )
    return command.SerializeToString()


def token_revoke(token_id: str, *, issued_at_ms: int, request_id: str = "") -> bytes:
    command = Command(issued_at_ms=issued_at_ms, request_id=request_id)
    command.token_revoke.id = token_id
    if request_id:
        command.request_fingerprint = fingerprint("REVOKE", token_id, b"", None, 0)
    return command.SerializeToString()
