"""The write-ahead log: every command applied since the last checkpoint.

File format (`<data_dir>/sm/wal.log`, all integers little-endian)
-----------------------------------------------------------------
    header   b"KVN\\0" b"WAL\\0" u16 version=1                       (10 bytes)
    record*  length u32 | crc32 u32 | index u64 | term u64 | opcode u8 | payload

`length` counts the bytes after the crc field (17 + len(payload)) and `crc32`
(zlib.crc32) covers exactly those bytes. `index` and `term` are the Raft log
position of the command; indexes are strictly increasing within the file (they
may have gaps: Raft uses some indexes for internal entries). `opcode` names the
command kind (see `Opcode`) and `payload` is the protobuf-encoded
`kvnode.Command`, stored byte for byte as it came out of the Raft log.

What a record means: the command was applied to the state machine. Replaying
the records after the checkpoint's index, in order, re-executes each command
against the same state and so reaches the same outcome (a CAS is re-evaluated,
never blindly re-applied).

Torn tails and corruption
-------------------------
Appends are not atomic: a crash can leave the last record short, or with a
payload whose CRC fails. On recovery such a record **at the tail** is a torn
write: it is truncated and recovery goes on (the command is still in the Raft
log and will be delivered again). A damaged record **followed by a valid one**
cannot come from a crash; it is corruption and the node refuses to start with
`CorruptRecord` naming the file and offset, unless it is opened with
`repair=True`, which truncates the log at the damaged record (safe while the
Raft journal still holds those entries).

After a checkpoint the log is truncated back to its header.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from struct import Struct
from typing import NamedTuple

from kvnode.storage.errors import CorruptRecord, UnknownOpcode
from kvnode.storage.fileformat import (
    HEADER_SIZE,
    KIND_WAL,
    atomic_write,
    check_header,
    encode_header,
)
from kvnode.storage.framing import AppendOnlyFile, encode_frame, read_frames

log = logging.getLogger(__name__)

WAL_VERSION = 1
BODY = Struct("<QQB")  # index, term, opcode
MIN_LENGTH = BODY.size
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024


class Opcode(IntEnum):
    """The kind of command a record holds; mirrors the `op` oneof of `kvnode.Command`."""

    PUT = 1
    DELETE = 2
    CAS = 3
    EXPIRE = 4
    NOOP = 5
    TXN = 6
    LEASE_GRANT = 7
    LEASE_KEEPALIVE = 8
    LEASE_REVOKE = 9
    LEASE_RENEW_ALL = 10
    MEMBER_PUBLISH = 11
    MEMBER_FORGET = 12
    BATCH = 13
    CLUSTER_INIT = 14
    TOKEN_CREATE = 15
    TOKEN_REVOKE = 16


KNOWN_OPCODES = frozenset(int(op) for op in Opcode)


@dataclass(frozen=True, slots=True)
class WalRecord:
    index: int
    term: int
    opcode: int
    payload: bytes
    offset: int


def encode_record(index: int, term: int, opcode: int, payload: bytes) -> bytes:
    return encode_frame(BODY.pack(index, term, opcode) + payload)


class WalScan(NamedTuple):
    records: list[WalRecord]
    valid_end: int  # offset just after the last good record
    torn_bytes: int  # bytes after valid_end that recovery must truncate


def scan(buf: bytes, path: Path, max_record: int, *, repair: bool = False) -> WalScan:
    """Decode every record of a WAL image (header included) and locate its valid end."""
    check_header(buf, KIND_WAL, WAL_VERSION, path)
    records: list[WalRecord] = []

    def accept(body: bytes, offset: int) -> None:
        index, term, opcode = BODY.unpack_from(body, 0)
        if opcode not in KNOWN_OPCODES:
            raise UnknownOpcode(path, f"unknown opcode {opcode}", offset)
        prev_index = records[-1].index if records else 0
        if index <= prev_index:
            raise CorruptRecord(
                path, f"record index {index} does not follow previous index {prev_index}", offset
            )
        records.append(WalRecord(index, term, opcode, body[BODY.size :], offset))

    result = read_frames(
        buf,
        HEADER_SIZE,
        path,
        min_body=MIN_LENGTH,
        max_body=max_record,
        check=accept,
        repair=repair,
    )
    return WalScan(records, result.valid_end, result.torn_bytes)


class WriteAheadLog(AppendOnlyFile):
    """`wal.log`, opened for appending after recovery."""

    @classmethod
    def create(cls, path: Path, *, durable: bool) -> None:
        atomic_write(path, encode_header(KIND_WAL, WAL_VERSION), durable=durable)

    @classmethod
    def recover(
        cls, path: Path, *, max_record: int, repair: bool, durable: bool
    ) -> tuple[WriteAheadLog, list[WalRecord]]:
        """Open an existing log, truncating a torn tail, and return it with its records."""
        result = scan(path.read_bytes(), path, max_record, repair=repair)
        if result.torn_bytes:
            log.warning(
                "%s: truncating %d bytes of torn tail at offset %d (last good index %s)",
                path,
                result.torn_bytes,
                result.valid_end,
                result.records[-1].index if result.records else "none",
            )
        wal = cls(path, result.valid_end)  # truncates whatever lies past the valid end
        if result.torn_bytes and durable:
            wal.sync()
        return wal, result.records

    def reset(self, *, durable: bool) -> None:
        """Drop every record (they are covered by a checkpoint), keeping the header."""
        self.truncate(HEADER_SIZE, durable=durable)
