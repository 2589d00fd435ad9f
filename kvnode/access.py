"""Who may do what: the grant a bearer token carries.

With `auth_token` set, every request but `/health` and `/ready` names a token: the
configured one is the root token (admin, every key); the others are created over the
API (`POST /auth/tokens`) and replicated, each with a role and, optionally, the key
prefixes it is limited to. http/auth.py checks a request against its grant.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from kvnode.storage.record import Token

ROLES = ("read", "readwrite", "admin", "metrics")
READERS = frozenset({"read", "readwrite", "admin"})
WRITERS = frozenset({"readwrite", "admin"})


@dataclass(frozen=True)
class Grant:
    role: str
    prefixes: tuple[str, ...] = ()  # empty: every key
    token_id: str = ""

    @property
    def reads(self) -> bool:
        return self.role in READERS

    @property
    def writes(self) -> bool:
        return self.role in WRITERS

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def covers(self, key_or_prefix: str) -> bool:
        """True if every key that starts with `key_or_prefix` is within the grant."""
        return not self.prefixes or any(key_or_prefix.startswith(p) for p in self.prefixes)


ROOT = Grant("admin", token_id="auth_token")


def secret_sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class TokenIndex:
    """The grant of a bearer secret, from the replicated tokens. The index is rebuilt when
    the tokens change (the state machine replaces their dict on every change)."""

    def __init__(self) -> None:
        self._source: Mapping[str, Token] | None = None
        self._by_hash: dict[bytes, Grant] = {}

    def grant(self, tokens: Mapping[str, Token], secret: str) -> Grant | None:
        if tokens is not self._source:
            self._by_hash = {
                token.secret_sha256: Grant(token.role, token.prefixes, token_id)
                for token_id, token in tokens.items()
            }
            self._source = tokens
        return self._by_hash.get(secret_sha256(secret))


def is_root(secret: str, root_token: str) -> bool:
    return bool(root_token) and hmac.compare_digest(secret.encode(), root_token.encode())
