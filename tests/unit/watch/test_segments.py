"""The watch history across restarts: a state machine that checkpointed (in the applying
thread or in a forked child) and then crashed comes back with the same window of
changes as before, whatever point the crash fell on; damaged segments are reported and
the window starts after them; segments that left the window are deleted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kvnode import commands
from kvnode.storage.fileformat import TMP_SUFFIX
from kvnode.storage.layout import STATE_MACHINE_DIR, WATCH_DIR
from kvnode.storage.machine import Entry, StateMachine
from kvnode.watch.history import Compacted, WatchHistory
from kvnode.watch.segments import SEGMENT_NAME
from tests.waiting import wait_until_sync

CAPACITY = 1000


class Crash(Exception):
    """Raised by a fault hook: the process "dies" at that step."""


def open_node(
    data_dir: Path, capacity: int = CAPACITY, **kwargs: object
) -> tuple[StateMachine, WatchHistory]:
    history = WatchHistory(capacity, 1 << 24, data_dir / WATCH_DIR, durable=False)
    history.load()
    machine = StateMachine(
        data_dir / STATE_MACHINE_DIR,
        fsync=False,
        checkpoint_entries=10**9,
        changes=history,
        **kwargs,  # type: ignore[arg-type]
    )
    return machine, history


def write(machine: StateMachine, first_index: int, count: int) -> int:
    """`count` puts (some of them overwrite, one deletes), from Raft index `first_index`."""
    for i in range(count):
        index = first_index + i
        if i % 7 == 6:
            command = commands.delete(f"k{i - 3}", issued_at_ms=1)
        else:
            command = commands.put(f"k{i % 11}", f"v{index}".encode(), issued_at_ms=1)
        machine.apply([Entry(index, 1, command)])
    return first_index + count


def window(history: WatchHistory) -> list[tuple[str, str, int, int, bytes | None]]:
    read = history.since(history.since(None).floor)
    return [(c.kind, c.key, c.revision, c.create_revision, c.value) for c in read.changes]


def segment_files(data_dir: Path) -> list[str]:
    directory = data_dir / WATCH_DIR
    if not directory.is_dir():
        return []  # no segment written yet
    return sorted(p.name for p in directory.iterdir() if SEGMENT_NAME.match(p.name))


def test_a_restart_after_checkpoints_serves_the_whole_window(tmp_path: Path) -> None:
    machine, history = open_node(tmp_path)
    index = write(machine, 3, 40)
    machine.checkpoint()
    index = write(machine, index, 40)
    machine.checkpoint()
    write(machine, index, 25)  # only in the WAL
    before = window(history)
    assert before[0][2] == 1 and len(before) > 90  # a few deletes found nothing
    # No close: the process "crashes" here.

    _machine, reopened = open_node(tmp_path)
    assert window(reopened) == before
    assert reopened.since(1).floor == 1


def test_a_background_checkpoint_writes_its_segment_in_the_child(tmp_path: Path) -> None:
    machine, history = open_node(tmp_path, background_checkpoints=True, checkpoint_seconds=0)
    write(machine, 3, 30)
    machine._checkpoint_entries = 1  # due now; sync() forks the child
    machine.sync()
    wait_until_sync(lambda: segment_files(tmp_path), 10, "the child to write its segment")
    machine.close(checkpoint=False)
    _machine, reopened = open_node(tmp_path)
    assert window(reopened) == window(history)


@pytest.mark.parametrize("step", ["state.data:tmp-written", "state.data:renamed"])
def test_a_crash_between_segment_and_checkpoint_repeats_nothing(tmp_path: Path, step: str) -> None:
    def crash_at(reached: str) -> None:
        if reached == step:
            raise Crash(reached)

    machine, history = open_node(tmp_path, fault_hook=crash_at)
    write(machine, 3, 50)
    before = window(history)
    with pytest.raises(Crash):
        machine.checkpoint()  # the segment is written first, the checkpoint then fails

    _machine, reopened = open_node(tmp_path)
    assert window(reopened) == before


def test_a_damaged_segment_is_reported_and_the_window_starts_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    machine, history = open_node(tmp_path)
    index = write(machine, 3, 20)
    machine.checkpoint()
    index = write(machine, index, 20)
    machine.checkpoint()
    write(machine, index, 5)
    oldest, newest = segment_files(tmp_path)
    damaged = tmp_path / WATCH_DIR / oldest
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x40
    damaged.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR):
        _machine, reopened = open_node(tmp_path)
    assert oldest in caplog.text and "unreadable" in caplog.text
    after_damage = int(SEGMENT_NAME.match(oldest).group(1)) + 1  # type: ignore[union-attr]
    with pytest.raises(Compacted):
        reopened.since(after_damage - 1)
    assert window(reopened) == [c for c in window(history) if c[2] >= after_damage]
    assert newest in segment_files(tmp_path)


def test_segments_that_left_the_window_are_deleted(tmp_path: Path) -> None:
    machine, history = open_node(tmp_path, capacity=30)
    index = 3
    for _ in range(5):
        index = write(machine, index, 20)
        machine.checkpoint()
    kept = segment_files(tmp_path)
    assert 1 <= len(kept) <= 3  # 30 changes span at most three segments of 20
    _machine, reopened = open_node(tmp_path, capacity=30)
    assert window(reopened) == window(history)


def test_a_killed_segment_writer_leaves_only_a_temporary_file(tmp_path: Path) -> None:
    machine, history = open_node(tmp_path)
    write(machine, 3, 10)
    machine.checkpoint()
    leftover = tmp_path / WATCH_DIR / f"history-{99:020d}.seg{TMP_SUFFIX}"
    leftover.write_bytes(b"half")
    _machine, reopened = open_node(tmp_path)
    assert window(reopened) == window(history)
    assert not leftover.exists()
