"""The replicated commands are encoded as the schema says: what `commands.put` builds by
hand (for speed) equals the message protobuf's own constructor makes, field for field
and byte for byte, so a log written by one build is read alike by any other."""

from __future__ import annotations

import itertools

from kvnode import commands
from kvnode.commands_pb2 import Command, CompareAndSwap, Condition, Put

ISSUED = 1_700_000_000_000


def reference_put(
    key: str, value: bytes, expire_at_ms: int, when: Condition | None, request_id: str, lease: int
) -> Command:
    fields: dict[str, object] = {"issued_at_ms": ISSUED, "request_id": request_id}
    if request_id:
        ttl_ms = expire_at_ms - ISSUED if expire_at_ms else 0
        method = f"PUT lease={lease}" if lease else "PUT"
        fields["request_fingerprint"] = commands.fingerprint(method, key, value, when, ttl_ms)
    if when is None:
        fields["put"] = Put(key=key, value=value, expire_at_ms=expire_at_ms, lease=lease)
    else:  # a compare-and-swap carries no lease (a leased put takes no condition)
        fields["cas"] = CompareAndSwap(
            key=key, value=value, expire_at_ms=expire_at_ms, condition=when
        )
    return Command(**fields)  # type: ignore[arg-type]


def test_every_kind_of_put_is_encoded_as_the_schema_says() -> None:
    conditions = [None, Condition(prev_exist=False), Condition(prev_revision=3)]
    for key, value, expire_at_ms, when, request_id, lease in itertools.product(
        ["k", "a/b"], [b"", b"v" * 100], [0, ISSUED + 5000], conditions, ["", "req-1"], [0, 7]
    ):
        encoded = commands.put(
            key,
            value,
            issued_at_ms=ISSUED,
            expire_at_ms=expire_at_ms,
            when=when,
            request_id=request_id,
            lease=lease,
        )
        expected = reference_put(key, value, expire_at_ms, when, request_id, lease)
        assert Command.FromString(encoded) == expected
        assert encoded == expected.SerializeToString()
