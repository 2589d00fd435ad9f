"""Transactions: the compares and the op replies, decided inside `Keyspace.execute`.

A transaction's compares read the live state before it; its chosen branch
then runs op by op on the key space at the transaction's revision, so a get
sees the branch's earlier puts. What each op did is recorded in a `TxnReply`
(protobuf), which is also what a retry under the same request id gets back.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from kvnode.commands_pb2 import Compare, KeyState
from kvnode.storage.record import KeyRecord

OPERATORS: dict[int, Callable[[Any, Any], bool]] = {
    Compare.EQUAL: operator.eq,
    Compare.NOT_EQUAL: operator.ne,
    Compare.LESS: operator.lt,
    Compare.GREATER: operator.gt,
}


def holds(compare: Compare, current: KeyRecord | None) -> bool:
    """Whether one compare holds against the key's live record (None: absent). A missing
    key has revision 0 and create_revision 0; a value compare on it never holds."""
    test = OPERATORS.get(compare.op)
    if test is None:
        return False
    if compare.target == Compare.EXISTS:
        return test(current is not None, compare.exists)
    if compare.target == Compare.REVISION:
        return test(current.mod_revision if current else 0, compare.number)
    if compare.target == Compare.CREATE_REVISION:
        return test(current.create_revision if current else 0, compare.number)
    if compare.target == Compare.VALUE:
        return current is not None and test(current.value, compare.value)
    return False


def key_state(key: str, record: KeyRecord) -> KeyState:
    return KeyState(
        key=key,
        value=record.value,
        create_revision=record.create_revision,
        mod_revision=record.mod_revision,
        expire_at_ms=record.expire_at_ms,
        lease=record.lease,
    )
