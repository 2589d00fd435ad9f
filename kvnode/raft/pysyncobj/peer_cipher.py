"""Authenticated encryption of peer traffic: AES-256-GCM in place of PySyncObj's Fernet.

PySyncObj seals every peer message with Fernet (AES-CBC + HMAC-SHA256 +
base64, about 40 µs per message hop here); a write crosses several hops, and
with the cluster secret set that alone added ~0.6 ms to a write's p50. AES-GCM
from the same `cryptography` package does the same job (confidentiality,
integrity, a timestamp bound to the message) in about 1 µs.

`PeerCipher` keeps the three methods PySyncObj's connection calls
(`encrypt_at_time`, `extract_timestamp`, `decrypt`); any failure raises, and
PySyncObj drops the connection. The replay defence is PySyncObj's own: a fresh
random key per connection inside every message, and timestamps that may not go
backwards.

Token: `version u8 | timestamp u64 | nonce 12 bytes | ciphertext + 16-byte tag`,
with version and timestamp authenticated as associated data. Nonces must never
repeat under one key, and the key lives as long as the cluster secret: each
cipher object draws a random 64-bit prefix and counts the low 32 bits, drawing
a new prefix before the counter could wrap.
"""

from __future__ import annotations

import itertools
import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

TOKEN_VERSION = 0x4B
HEADER = struct.Struct(">BQ")  # version, timestamp
NONCE_PREFIX_BYTES = 8
NONCE_BYTES = 12
COUNTER_LIMIT = 2**32
TAG_BYTES = 16
KEY_SALT = b"kvnode peer traffic, AES-256-GCM, v1"
KEY_ITERATIONS = 200_000


class InvalidPeerToken(ValueError):
    """A peer message that was not sealed with this cluster's secret (or was altered)."""


def derive_key(secret: str | bytes) -> bytes:
    """A 256-bit key from the cluster secret (slow on purpose: secrets may be passphrases)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=KEY_SALT, iterations=KEY_ITERATIONS)
    return kdf.derive(raw)


class PeerCipher:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._new_nonce_prefix()
        # PySyncObj opens each token twice (timestamp, then body): the second call reuses
        # the first's work. One slot suffices: both calls come from the one tick thread.
        self._last_opened: tuple[bytes, bytes] | None = None

    @classmethod
    def from_secret(cls, secret: str | bytes) -> PeerCipher:
        return cls(derive_key(secret))

    def _new_nonce_prefix(self) -> None:
        self._nonce_prefix = os.urandom(NONCE_PREFIX_BYTES)
        self._counter = itertools.count()

    def _next_nonce(self) -> bytes:
        number = next(self._counter)
        if number >= COUNTER_LIMIT:
            self._new_nonce_prefix()
            number = next(self._counter)
        return self._nonce_prefix + number.to_bytes(NONCE_BYTES - NONCE_PREFIX_BYTES, "big")

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        header = HEADER.pack(TOKEN_VERSION, current_time)
        nonce = self._next_nonce()
        return header + nonce + self._aead.encrypt(nonce, data, header)

    def decrypt(self, token: bytes) -> bytes:
        opened = self._last_opened
        if opened is not None and opened[0] is token:
            return opened[1]
        if len(token) < HEADER.size + NONCE_BYTES + TAG_BYTES or token[0] != TOKEN_VERSION:
            raise InvalidPeerToken("not a kvnode peer message")
        header = token[: HEADER.size]
        nonce = token[HEADER.size : HEADER.size + NONCE_BYTES]
        try:
            data = self._aead.decrypt(nonce, token[HEADER.size + NONCE_BYTES :], header)
        except Exception as exc:  # cryptography raises InvalidTag
            raise InvalidPeerToken("peer message failed authentication") from exc
        self._last_opened = (token, data)
        return data

    def extract_timestamp(self, token: bytes) -> int:
        """The sealed timestamp, only once the whole token authenticates (PySyncObj records
        it as the connection's high-water mark before it calls `decrypt`)."""
        self.decrypt(token)
        timestamp: int = HEADER.unpack_from(token)[1]
        return timestamp
