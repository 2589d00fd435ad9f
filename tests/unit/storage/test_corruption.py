"""Torn and corrupt files are detected, repaired when that is safe, and refused otherwise."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest

from kvnode import commands
from kvnode.storage.checkpoint import decode_metadata, encode_metadata
from kvnode.storage.errors import (
    CorruptFile,
    CorruptRecord,
    NotKvnodeFile,
    RecordTooLarge,
    SnapshotMismatch,
    UnknownOpcode,
    UnsupportedFormat,
)
from kvnode.storage.fileformat import HEADER_SIZE
from kvnode.storage.framing import FRAME
from kvnode.storage.machine import Entry, StateMachine
from kvnode.storage.wal import WalRecord, encode_record, scan

RECORDS = 6


def fill(directory: Path, count: int = RECORDS) -> None:
    """Apply `count` puts without a checkpoint, so they all sit in the WAL."""
    machine = StateMachine(directory, checkpoint_entries=10**9, checkpoint_seconds=10**9)
    machine.apply(
        [Entry(i, 1, commands.put(f"k{i}", b"v" * i, issued_at_ms=i)) for i in range(1, count + 1)]
    )
    machine.close(checkpoint=False)


def wal_records(directory: Path) -> list[WalRecord]:
    path = directory / "wal.log"
    return scan(path.read_bytes(), path, 10**6).records


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    directory = tmp_path / "sm"
    fill(directory)
    return directory


def test_truncating_the_last_record_at_every_offset_keeps_the_previous_ones(filled: Path) -> None:
    wal = filled / "wal.log"
    original = wal.read_bytes()
    last = wal_records(filled)[-1]
    for cut in range(last.offset, len(original)):
        wal.write_bytes(original[:cut])
        machine = StateMachine(filled)
        assert machine.last_applied == RECORDS - 1, f"cut at {cut}"
        assert machine.read(f"k{RECORDS - 1}")[0] is not None
        assert machine.read(f"k{RECORDS}")[0] is None
        machine.close(checkpoint=False)
        assert wal.stat().st_size == last.offset, "the torn tail was not truncated"


def test_garbage_after_the_last_record_is_a_torn_tail(filled: Path) -> None:
    wal = filled / "wal.log"
    wal.write_bytes(wal.read_bytes() + b"\x00" * 37)
    machine = StateMachine(filled)
    assert machine.last_applied == RECORDS


@pytest.mark.parametrize("field_offset", [0, 4, 8, 25, 30])
def test_bit_flip_in_a_middle_record_is_refused(filled: Path, field_offset: int) -> None:
    middle = wal_records(filled)[2]
    flip_bit(filled / "wal.log", middle.offset + field_offset)
    with pytest.raises(CorruptRecord) as raised:
        StateMachine(filled)
    assert raised.value.offset == middle.offset
    assert "wal.log" in str(raised.value)


def test_repair_truncates_at_the_damaged_record(filled: Path) -> None:
    middle = wal_records(filled)[2]
    flip_bit(filled / "wal.log", middle.offset + 30)
    machine = StateMachine(filled, repair=True)
    assert machine.last_applied == 2
    assert machine.read("k3")[0] is None


def append_raw(directory: Path, record: bytes) -> None:
    with open(directory / "wal.log", "ab") as wal:
        wal.write(record)


def test_unknown_opcode_is_refused_with_file_and_offset(filled: Path) -> None:
    offset = (filled / "wal.log").stat().st_size
    append_raw(filled, encode_record(RECORDS + 1, 1, 99, b""))
    with pytest.raises(UnknownOpcode, match="unknown opcode 99") as raised:
        StateMachine(filled)
    assert raised.value.offset == offset


def test_record_over_the_maximum_is_refused(filled: Path) -> None:
    append_raw(filled, encode_record(RECORDS + 1, 1, 5, b"x" * 5000))
    with pytest.raises(RecordTooLarge):
        StateMachine(filled, max_record_bytes=1000)


def test_record_whose_payload_is_not_a_command_is_refused(filled: Path) -> None:
    append_raw(filled, encode_record(RECORDS + 1, 1, 1, b"\xff\xff\xff"))
    with pytest.raises(CorruptRecord, match="undecodable"):
        StateMachine(filled)


def test_indexes_going_backwards_are_refused(filled: Path) -> None:
    append_raw(filled, encode_record(2, 1, 5, commands.noop()))
    with pytest.raises(CorruptRecord, match="does not follow"):
        StateMachine(filled)


def checkpointed(directory: Path) -> None:
    fill(directory)
    machine = StateMachine(directory)
    machine.close()  # the final checkpoint moves everything into state.data


@pytest.mark.parametrize("name", ["state.data", "metadata.bin"])
def test_bit_flip_anywhere_in_checkpoint_files_is_refused(tmp_path: Path, name: str) -> None:
    directory = tmp_path / "sm"
    checkpointed(directory)
    size = (directory / name).stat().st_size
    original = (directory / name).read_bytes()
    for offset in range(HEADER_SIZE, size):
        flip_bit(directory / name, offset)
        with pytest.raises(CorruptFile) as raised:
            StateMachine(directory)
        assert name in str(raised.value)
        assert raised.value.offset is not None and f"at offset {raised.value.offset}" in str(
            raised.value
        ), "the error must name the offset, as WAL errors do"
        (directory / name).write_bytes(original)
    assert StateMachine(directory).last_applied == RECORDS


def rewrite_metadata(directory: Path, **changes: int) -> None:
    path = directory / "metadata.bin"
    meta = decode_metadata(path.read_bytes(), path)
    path.write_bytes(encode_metadata(dataclasses.replace(meta, **changes)))


def test_metadata_lagging_the_checkpoint_is_a_crash_between_steps_and_is_repaired(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "sm"
    checkpointed(directory)
    rewrite_metadata(directory, index=RECORDS - 3, checkpoint_crc=0)
    assert StateMachine(directory).last_applied == RECORDS
    path = directory / "metadata.bin"
    assert decode_metadata(path.read_bytes(), path).index == RECORDS


def test_metadata_newer_than_the_checkpoint_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "sm"
    checkpointed(directory)
    rewrite_metadata(directory, index=RECORDS + 5)
    with pytest.raises(CorruptFile, match="rolled back"):
        StateMachine(directory)


def test_checkpoint_with_another_crc_at_the_same_index_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "sm"
    checkpointed(directory)
    rewrite_metadata(directory, checkpoint_crc=12345)
    with pytest.raises(CorruptFile, match="not the checkpoint the node wrote"):
        StateMachine(directory)


def test_bit_flip_in_a_snapshot_is_refused_and_leaves_state_alone(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    fill(source)
    machine = StateMachine(source)
    snapshot = machine.snapshot(tmp_path / "handoff.snap", extra=b"raft-bookkeeping")
    original = snapshot.read_bytes()
    receiver = StateMachine(target)
    receiver.apply([Entry(1, 1, commands.put("local", b"x", issued_at_ms=1))])
    for offset in range(HEADER_SIZE, len(original)):
        flip_bit(snapshot, offset)
        with pytest.raises(SnapshotMismatch):
            receiver.restore(snapshot)
        snapshot.write_bytes(original)
    assert receiver.read("local")[0] is not None and receiver.last_applied == 1
    assert receiver.restore(snapshot).extra == b"raft-bookkeeping"
    assert receiver.digest() == machine.digest()


def test_files_of_another_program_are_refused(tmp_path: Path) -> None:
    directory = tmp_path / "sm"
    directory.mkdir()
    (directory / "notes.txt").write_text("hello")
    with pytest.raises(NotKvnodeFile, match="not a kvnode data directory"):
        StateMachine(directory)


def test_wal_with_foreign_magic_is_refused(filled: Path) -> None:
    wal = filled / "wal.log"
    wal.write_bytes(b"SQLite format 3\x00" + wal.read_bytes()[16:])
    with pytest.raises(NotKvnodeFile, match="magic"):
        StateMachine(filled)


@pytest.mark.parametrize("name", ["wal.log", "state.data", "metadata.bin"])
def test_newer_format_version_is_refused(filled: Path, name: str) -> None:
    path = filled / name
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, 8, 99)
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormat, match="version 99"):
        StateMachine(filled)


def test_frame_constant_matches_the_documented_layout() -> None:
    record = encode_record(7, 3, 1, b"payload")
    length, _crc = FRAME.unpack_from(record, 0)
    assert length == 17 + len(b"payload") == len(record) - 8
