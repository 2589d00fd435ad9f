"""A read waits for one slice of an applied batch, not for the batch; whole-state readers (a
backup's capture, the digest) still see only whole entries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from kvnode import commands
from kvnode.storage.changes import Change, IgnoreChanges
from kvnode.storage.machine import APPLY_SLICE, Entry, StateMachine
from kvnode.storage.state_lock import StateLock
from tests.waiting import wait_until_sync

BATCH = 8 * APPLY_SLICE
T = TypeVar("T")


class HoldFirstChange(IgnoreChanges):
    """Stops the applying thread at the batch's first change until a reader waits."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()

    def changed(self, change: Change) -> None:
        if not self.inside.is_set():
            self.inside.set()
            assert self.release.wait(30), "the test never let the apply go on"


def readers_waiting(machine: StateMachine) -> int:
    return machine._lock._waiting  # only the lock can tell


def batch_entry() -> Entry:
    puts = [commands.put(f"k{i}", b"v", issued_at_ms=1) for i in range(BATCH)]
    return Entry(1, 1, commands.batch(puts))


def read_during_apply(
    tmp_path: Path, read: Callable[[StateMachine], T], *, whole_state: bool = False
) -> tuple[T, int]:
    """`read` from another thread, started while a batch of BATCH puts is being applied
    and with a key read waiting too: what it returned, and the revision the key read
    saw (while `read`, if it waits for whole entries, still waited)."""
    waiting = 1 if whole_state else 2  # a whole-state reader waits for the applier's turn
    sink = HoldFirstChange()
    machine = StateMachine(tmp_path / "sm", fsync=False, changes=sink)
    with ThreadPoolExecutor(3) as pool:
        applying = pool.submit(machine.append, [batch_entry()])
        assert sink.inside.wait(30)
        reading: Future[T] = pool.submit(read, machine)
        key_read = pool.submit(machine.read, "k0")
        wait_until_sync(lambda: readers_waiting(machine) == waiting, 30, "waiting readers")
        sink.release.set()
        result = reading.result(30)
        _record, key_read_revision = key_read.result(30)
        applying.result(30)
    assert machine.revision == BATCH
    return result, key_read_revision


def test_a_read_gets_in_after_one_slice_of_a_batch(tmp_path: Path) -> None:
    (record, revision), _ = read_during_apply(tmp_path, lambda m: m.read("k0"))
    assert record is not None and record.mod_revision == 1
    assert revision == APPLY_SLICE, "the read waited for more than one slice"


def test_a_scan_sees_a_state_the_log_passed_through(tmp_path: Path) -> None:
    (found, revision), _ = read_during_apply(tmp_path, lambda m: m.scan("k"))
    assert revision == APPLY_SLICE
    assert sorted(int(key[1:]) for key, _ in found) == list(range(APPLY_SLICE))


def test_a_backup_capture_waits_for_the_whole_entry(tmp_path: Path) -> None:
    (image, count), key_read_revision = read_during_apply(
        tmp_path, lambda m: m.capture(), whole_state=True
    )
    assert key_read_revision == APPLY_SLICE  # reads went in half-way through the entry
    assert (image.index, image.revision, count) == (1, BATCH, BATCH)


def test_status_counters_and_digest_are_of_one_whole_entry(tmp_path: Path) -> None:
    stats, _ = read_during_apply(tmp_path, lambda m: m.stats(with_digest=True), whole_state=True)
    assert (stats.last_applied, stats.revision, stats.keys) == (1, BATCH, BATCH)
    assert stats.digest is not None


def test_an_applier_lets_a_waiting_reader_go_first() -> None:
    lock = StateLock()
    order: list[str] = []
    with ThreadPoolExecutor(1) as pool, lock.for_changes():

        def read() -> None:
            with lock.for_reads():
                order.append("read")

        reading = pool.submit(read)
        wait_until_sync(lambda: lock._waiting == 1, 30, "a waiting reader")
        lock.let_readers_in()
        order.append("applier went on")
        reading.result(30)
    assert order == ["read", "applier went on"]
