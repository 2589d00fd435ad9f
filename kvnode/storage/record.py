"""One stored key's record."""

from __future__ import annotations

from typing import NamedTuple


class KeyRecord(NamedTuple):
    value: bytes
    create_revision: int
    mod_revision: int
    expire_at_ms: int  # 0 = no deadline of its own
    lease: int = 0  # the lease it lives and dies with, 0 = none

    def expired(self, now_ms: int) -> bool:
        return self.expire_at_ms != 0 and self.expire_at_ms <= now_ms


class Lease(NamedTuple):
    """A lease: its ttl, and the deadline (Unix ms, proposer clocks) it dies at."""

    ttl_ms: int
    expire_at_ms: int


class Token(NamedTuple):
    """An access token: the SHA-256 of its secret, its role, and the key prefixes it may
    touch (empty: every key)."""

    secret_sha256: bytes
    role: str
    prefixes: tuple[str, ...] = ()


class Member(NamedTuple):
    """A member's directory entry (by Raft address): its name and its client URL."""

    node_id: str
    http_url: str
