"""A plain-dict reference model of the key space, and a random operation generator.

The model is deliberately written from the contract (ARCHITECTURE.md), not from
keyspace.py, so the property tests compare two independent readings of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from kvnode import commands


@dataclass
class ModelRecord:
    value: bytes
    create_revision: int
    mod_revision: int
    expire_at_ms: int


@dataclass
class Model:
    data: dict[str, ModelRecord] = field(default_factory=dict)
    clock: int = 0
    revision: int = 0  # one per applied write command, whatever its log index

    def _visible(self, key: str, now: int) -> ModelRecord | None:
        record = self.data.get(key)
        if record is None or (record.expire_at_ms and record.expire_at_ms <= now):
            return None
        return record

    def get(self, key: str, now: int) -> ModelRecord | None:
        return self._visible(key, now)

    def apply(self, op: tuple) -> None:
        kind = op[0]
        issued = op[-1]
        self.revision += 1
        index = self.revision
        self.clock = max(self.clock, issued)
        if kind == "expire":
            self.data = {
                k: r
                for k, r in self.data.items()
                if not (r.expire_at_ms and r.expire_at_ms <= issued)
            }
            return
        key = op[1]
        current = self._visible(key, self.clock)
        if kind in ("cas", "cdelete") and not _condition_holds(op[-3], op[-2], current):
            return
        if kind in ("delete", "cdelete"):
            self.data.pop(key, None)
            return
        value, ttl_deadline = op[2], op[3]
        if ttl_deadline and ttl_deadline <= self.clock:
            self.data.pop(key, None)
            return
        created = current.create_revision if current else index
        self.data[key] = ModelRecord(value, created, index, ttl_deadline)


def _condition_holds(kind: str, expected: object, current: ModelRecord | None) -> bool:
    if kind == "exist":
        return (current is not None) == expected
    if current is None:
        return False
    if kind == "value":
        return current.value == expected
    return current.mod_revision == expected


def encode(op: tuple) -> bytes:
    """Turn a model operation into the command a proposer would put in the log."""
    kind, issued = op[0], op[-1]
    if kind == "expire":
        return commands.expire(issued)
    if kind == "put":
        return commands.put(op[1], op[2], expire_at_ms=op[3], issued_at_ms=issued)
    if kind == "delete":
        return commands.delete(op[1], issued_at_ms=issued)
    when = _encode_condition(op[-3], op[-2])
    if kind == "cas":
        return commands.put(op[1], op[2], expire_at_ms=op[3], issued_at_ms=issued, when=when)
    return commands.delete(op[1], issued_at_ms=issued, when=when)


def _encode_condition(kind: str, expected: object):
    if kind == "exist":
        return commands.condition(prev_exist=bool(expected))
    if kind == "value":
        return commands.condition(prev_value=expected)  # type: ignore[arg-type]
    return commands.condition(prev_revision=expected)  # type: ignore[arg-type]


KEYS = ["a", "b", "c", "dir/x", "dir/y", "ü"]
VALUES = [b"", b"v1", b"v2", b"\x00\xff"]


def op_stream(seed: int):
    """A deterministic, endless log: Raft-like indexes with gaps, terms that grow."""
    rng = random.Random(seed)
    index, term = 2, 1
    while True:
        index += rng.choice([1, 1, 1, 2])
        if rng.random() < 0.01:
            term += 1
        yield index, term, random_op(rng, index, index * 10)


def random_op(rng: random.Random, index: int, clock: int) -> tuple:
    """One random operation at roughly `clock` ms; conditions often refer to recent state."""
    issued = clock + rng.randint(-50, 200)  # proposers' clocks disagree a little
    key = rng.choice(KEYS)
    value = rng.choice(VALUES)
    ttl = clock + rng.randint(1, 2000) if rng.random() < 0.3 else 0
    roll = rng.random()
    if roll < 0.35:
        return ("put", key, value, ttl, issued)
    if roll < 0.45:
        return ("delete", key, issued)
    if roll < 0.55:
        return ("expire", issued)
    cond_kind = rng.choice(["exist", "value", "revision"])
    if cond_kind == "exist":
        expected: object = rng.random() < 0.5
    elif cond_kind == "value":
        expected = rng.choice(VALUES)
    else:
        expected = rng.randint(max(0, index - 10), index)
    if roll < 0.85:
        return ("cas", key, value, ttl, cond_kind, expected, issued)
    return ("cdelete", key, cond_kind, expected, issued)
