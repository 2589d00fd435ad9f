"""Builders for the replicated commands, so every proposer encodes them the same way.

Each builder returns the protobuf-encoded `kvnode.Command` that goes into the
Raft log. Times are absolute Unix milliseconds from the proposer's clock: the
state machine never reads a clock of its own.
"""

from __future__ import annotations

from kvnode.commands_pb2 import Command, Condition


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
) -> bytes:
    """A PUT, or a compare-and-swap when `when` is given."""
    command = Command(issued_at_ms=issued_at_ms, request_id=request_id)
    if when is None:
        command.put.key, command.put.value = key, value
        command.put.expire_at_ms = expire_at_ms
    else:
        command.cas.key, command.cas.value = key, value
        command.cas.expire_at_ms = expire_at_ms
        command.cas.condition.CopyFrom(when)
    return command.SerializeToString()


def delete(
    key: str,
    *,
    issued_at_ms: int,
    when: Condition | None = None,
    request_id: str = "",
) -> bytes:
    command = Command(issued_at_ms=issued_at_ms, request_id=request_id)
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
