"""The state image: every stored key at one Raft index, in one checksummed file.

The same layout serves two kinds of file (told apart by the header kind):
`state.data`, the local checkpoint, and `snapshot-<index>-<term>.snap`, the
self-contained snapshot handed to other nodes. All integers little-endian:

    header      b"KVN\\0" kind(b"CKPT" | b"SNAP") u16 version=9        (10 bytes)
    index       u64   Raft index of the last command reflected in the image
    term        u64   its term
    log_clock   u64   the key space's log clock (ms), see keyspace.py
    count       u64   number of key records that follow
    record*     key_len u32 | value_len u32 | create_rev u64 | mod_rev u64 |
                expire_at_ms u64 | (version >= 4) lease u64 | key (UTF-8) | value
    req_count   u64   (version >= 2) number of request-id records that follow
    request*    id_len u16 | index u64 | issued_at_ms u64 | status u8 (its position
                in outcome.Status; too_large, the sixth, from version 8) |
                revision u64 | created u8 | expire_at_ms u64 | id (UTF-8) |
                (version >= 3) fingerprint_len u8 | fingerprint |
                (version >= 4) detail_len u32 | detail (a transaction's reply)
    lease_count u64   (version >= 4) number of leases that follow
    lease*      id u64 | ttl_ms u64 | expire_at_ms u64
    member_count u64  (version >= 5) number of member directory entries that follow
    member*     addr_len u16 | id_len u16 | url_len u16 | raft_addr | node_id | http_url
    revision    u64   (version >= 6) the store revision; before, revisions were the index
    cluster_id  id_len u16 | id (UTF-8)   (version >= 7) the cluster's name ("": none yet)
    token_count u32   (version >= 9) number of access tokens that follow
    token*      id_len u16 | role_len u16 | prefix_count u16 | secret_sha256 (32 bytes) |
                id | role | (prefix_len u16 | prefix)*
    extra_len   u32   length of an opaque blob owned by the caller
    extra       bytes (the Raft layer keeps its own snapshot data here)
    crc32       u32   zlib.crc32 of every byte before it

The whole file is built in memory and checked as a whole: a single flipped bit
anywhere makes it unreadable rather than silently wrong.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kvnode.storage.dedup import RequestRecord
from kvnode.storage.errors import CorruptFile, StorageError
from kvnode.storage.fileformat import (
    CRC,
    HEADER_SIZE,
    check_header,
    check_small_file,
    encode_small_file,
)
from kvnode.storage.keyspace import Keyspace
from kvnode.storage.outcome import Outcome, Status
from kvnode.storage.record import KeyRecord, Lease, Member, Token

IMAGE_VERSION = 9
FIRST_VERSION_WITH_REQUESTS = 2
FIRST_VERSION_WITH_FINGERPRINTS = 3
FIRST_VERSION_WITH_LEASES = 4
FIRST_VERSION_WITH_MEMBERS = 5
FIRST_VERSION_WITH_REVISION = 6
FIRST_VERSION_WITH_CLUSTER_ID = 7
# A kvnode that knows 7 statuses at most would misread a stored `too_large` reply: the
# version tells it to upgrade instead.
FIRST_VERSION_WITH_TOO_LARGE = 8
FIRST_VERSION_WITH_TOKENS = 9
TOKEN_COUNT = struct.Struct("<I")
TOKEN = struct.Struct("<HHH32s")
PREFIX_LEN = struct.Struct("<H")
CLUSTER_ID_LEN = struct.Struct("<H")
IMAGE_HEAD = struct.Struct("<QQQQ")  # index, term, log_clock, count
ITEM_V3 = struct.Struct("<IIQQQ")
ITEM = struct.Struct("<IIQQQQ")
DETAIL_LEN = struct.Struct("<I")
LEASE_COUNT = struct.Struct("<Q")
LEASE = struct.Struct("<QQQ")
MEMBER_COUNT = struct.Struct("<Q")
MEMBER = struct.Struct("<HHH")
REVISION = struct.Struct("<Q")
REQUEST_COUNT = struct.Struct("<Q")
REQUEST = struct.Struct("<HQQBQBQ")
FINGERPRINT_LEN = struct.Struct("<B")
STATUS_CODES = {status: code for code, status in enumerate(Status)}
STATUSES = list(Status)
STATUSES_BEFORE_TOO_LARGE = STATUSES[: STATUSES.index(Status.TOO_LARGE)]
EXTRA_LEN = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class StateImage:
    """The state at one index, as decoded from a file or captured for encoding."""

    index: int
    term: int
    log_clock_ms: int
    items: Iterable[tuple[str, KeyRecord]]
    requests: Iterable[RequestRecord]
    leases: Iterable[tuple[int, Lease]]
    extra: bytes
    crc: int = 0
    members: Iterable[tuple[str, Member]] = ()
    revision: int = 0
    cluster_id: str = ""
    tokens: Iterable[tuple[str, Token]] = ()

    def keyspace(self) -> Keyspace:
        return Keyspace(
            self.items,
            self.log_clock_ms,
            self.requests,
            self.leases,
            self.members,
            self.revision,
            self.cluster_id,
            self.tokens,
        )


def encode_image(
    kind: bytes, index: int, term: int, keys: Keyspace, extra: bytes = b""
) -> tuple[bytes, int]:
    """Serialize an image; returns the bytes and their CRC (recorded in metadata.bin)."""
    return encode_parts(
        kind,
        StateImage(
            index,
            term,
            keys.log_clock_ms,
            keys.items(),
            keys.requests,
            keys.leases.items(),
            extra,
            members=keys.members.items(),
            revision=keys.revision,
            cluster_id=keys.cluster_id,
            tokens=keys.tokens.items(),
        ),
        len(keys),
    )


def encode_parts(kind: bytes, image: StateImage, count: int) -> tuple[bytes, int]:
    """Serialize `image` (its `count` items, read once, in key order); the CRC is computed."""
    parts = [IMAGE_HEAD.pack(image.index, image.term, image.log_clock_ms, count)]
    pack = ITEM.pack
    for key, record in image.items:
        encoded = key.encode()
        parts.append(
            pack(
                len(encoded),
                len(record.value),
                record.create_revision,
                record.mod_revision,
                record.expire_at_ms,
                record.lease,
            )
        )
        parts.append(encoded)
        parts.append(record.value)
    requests = list(image.requests)
    parts.append(REQUEST_COUNT.pack(len(requests)))
    for request in requests:
        encoded = request.request_id.encode()
        outcome = request.outcome
        parts.append(
            REQUEST.pack(
                len(encoded),
                request.index,
                request.issued_at_ms,
                STATUS_CODES[outcome.status],
                outcome.revision,
                outcome.created,
                outcome.expire_at_ms,
            )
        )
        parts.append(encoded)
        parts.append(FINGERPRINT_LEN.pack(len(request.fingerprint)))
        parts.append(request.fingerprint)
        parts.append(DETAIL_LEN.pack(len(outcome.detail)))
        parts.append(outcome.detail)
    leases = list(image.leases)
    parts.append(LEASE_COUNT.pack(len(leases)))
    for lease_id, lease in leases:
        parts.append(LEASE.pack(lease_id, lease.ttl_ms, lease.expire_at_ms))
    members = [
        (addr.encode(), member.node_id.encode(), member.http_url.encode())
        for addr, member in image.members
    ]
    parts.append(MEMBER_COUNT.pack(len(members)))
    for fields in members:
        parts.append(MEMBER.pack(*(len(field) for field in fields)))
        parts.extend(fields)
    parts.append(REVISION.pack(image.revision))
    cluster_id = image.cluster_id.encode()
    parts.append(CLUSTER_ID_LEN.pack(len(cluster_id)))
    parts.append(cluster_id)
    tokens = list(image.tokens)
    parts.append(TOKEN_COUNT.pack(len(tokens)))
    for token_id, token in tokens:
        encoded_id, role = token_id.encode(), token.role.encode()
        counts = (len(encoded_id), len(role), len(token.prefixes))
        parts.append(TOKEN.pack(*counts, token.secret_sha256))
        parts.extend((encoded_id, role))
        for prefix in token.prefixes:
            encoded = prefix.encode()
            parts.extend((PREFIX_LEN.pack(len(encoded)), encoded))
    parts.append(EXTRA_LEN.pack(len(image.extra)))
    parts.append(image.extra)
    data = encode_small_file(kind, IMAGE_VERSION, b"".join(parts))
    (crc,) = CRC.unpack_from(data, len(data) - CRC.size)
    return data, crc


def peek_index(head: bytes, kind: bytes) -> int | None:
    """The Raft index an image starts with, from its first bytes alone (None if `head` is
    too short or not an image of `kind`): enough to judge a snapshot as it starts to arrive."""
    if len(head) < HEADER_SIZE + IMAGE_HEAD.size or head[4:8] != kind:
        return None
    try:
        check_header(head, kind, IMAGE_VERSION, Path("<incoming snapshot>"))
    except StorageError:
        return None
    index: int = IMAGE_HEAD.unpack_from(head, HEADER_SIZE)[0]
    return index


def decode_image(
    data: bytes, kind: bytes, path: Path, error: type[StorageError] = CorruptFile
) -> StateImage:
    """Verify and decode an image; any damage raises `error` naming the file."""
    version, stored_crc = check_small_file(
        data, kind, IMAGE_VERSION, path, min_body=IMAGE_HEAD.size + EXTRA_LEN.size, error=error
    )
    index, term, log_clock_ms, count = IMAGE_HEAD.unpack_from(data, HEADER_SIZE)
    offset = HEADER_SIZE + IMAGE_HEAD.size
    items: list[tuple[str, KeyRecord]] = []
    item = ITEM if version >= FIRST_VERSION_WITH_LEASES else ITEM_V3
    unpack = item.unpack_from
    leases: list[tuple[int, Lease]] = []
    try:
        for _ in range(count):
            key_len, value_len, *fields = unpack(data, offset)
            offset += item.size
            key = data[offset : offset + key_len].decode()
            offset += key_len
            value = data[offset : offset + value_len]
            offset += value_len
            items.append((key, KeyRecord(value, *fields)))
        requests: list[RequestRecord] = []
        if version >= FIRST_VERSION_WITH_REQUESTS:
            known = (
                STATUSES if version >= FIRST_VERSION_WITH_TOO_LARGE else STATUSES_BEFORE_TOO_LARGE
            )
            (request_count,) = REQUEST_COUNT.unpack_from(data, offset)
            offset += REQUEST_COUNT.size
            for _ in range(request_count):
                id_len, index_, issued, status, revision, created, expire_at = REQUEST.unpack_from(
                    data, offset
                )
                offset += REQUEST.size
                request_id = data[offset : offset + id_len].decode()
                offset += id_len
                fingerprint = detail = b""
                if version >= FIRST_VERSION_WITH_FINGERPRINTS:
                    fingerprint, offset = _prefixed(data, offset, FINGERPRINT_LEN)
                if version >= FIRST_VERSION_WITH_LEASES:
                    detail, offset = _prefixed(data, offset, DETAIL_LEN)
                outcome = Outcome(known[status], revision, bool(created), expire_at, detail=detail)
                requests.append(RequestRecord(request_id, index_, issued, outcome, fingerprint))
        if version >= FIRST_VERSION_WITH_LEASES:
            (lease_count,) = LEASE_COUNT.unpack_from(data, offset)
            offset += LEASE_COUNT.size
            for _ in range(lease_count):
                lease_id, ttl_ms, lease_deadline = LEASE.unpack_from(data, offset)
                offset += LEASE.size
                leases.append((lease_id, Lease(ttl_ms, lease_deadline)))
        members: list[tuple[str, Member]] = []
        if version >= FIRST_VERSION_WITH_MEMBERS:
            (member_count,) = MEMBER_COUNT.unpack_from(data, offset)
            offset += MEMBER_COUNT.size
            for _ in range(member_count):
                lengths = MEMBER.unpack_from(data, offset)
                offset += MEMBER.size
                fields = []
                for length in lengths:
                    fields.append(data[offset : offset + length].decode())
                    offset += length
                addr, node_id, http_url = fields
                members.append((addr, Member(node_id, http_url)))
        revision = index  # written before revisions were counted apart from the log
        if version >= FIRST_VERSION_WITH_REVISION:
            (revision,) = REVISION.unpack_from(data, offset)
            offset += REVISION.size
        cluster_id = ""
        if version >= FIRST_VERSION_WITH_CLUSTER_ID:
            encoded_id, offset = _prefixed(data, offset, CLUSTER_ID_LEN)
            cluster_id = encoded_id.decode()
        tokens: list[tuple[str, Token]] = []
        if version >= FIRST_VERSION_WITH_TOKENS:
            (token_count,) = TOKEN_COUNT.unpack_from(data, offset)
            offset += TOKEN_COUNT.size
            for _ in range(token_count):
                id_len, role_len, prefix_count, secret_sha256 = TOKEN.unpack_from(data, offset)
                offset += TOKEN.size
                token_id = data[offset : offset + id_len].decode()
                offset += id_len
                role = data[offset : offset + role_len].decode()
                offset += role_len
                prefixes = []
                for _ in range(prefix_count):
                    prefix, offset = _prefixed(data, offset, PREFIX_LEN)
                    prefixes.append(prefix.decode())
                tokens.append((token_id, Token(secret_sha256, role, tuple(prefixes))))
        (extra_len,) = EXTRA_LEN.unpack_from(data, offset)
        offset += EXTRA_LEN.size
        extra = data[offset : offset + extra_len]
        offset += extra_len
    except (struct.error, UnicodeDecodeError, IndexError) as exc:
        raise error(path, f"malformed record near offset {offset}: {exc}", offset) from exc
    if offset != len(data) - CRC.size:
        raise error(path, "record count does not match the file length", offset)
    return StateImage(
        index,
        term,
        log_clock_ms,
        items,
        requests,
        leases,
        extra,
        stored_crc,
        members,
        revision,
        cluster_id,
        tokens,
    )


def _prefixed(data: bytes, offset: int, length: struct.Struct) -> tuple[bytes, int]:
    """The bytes after a length prefix at `offset`, and the offset past them."""
    (size,) = length.unpack_from(data, offset)
    start = offset + length.size
    return data[start : start + size], start + size
