"""Checkpoints written by a forked child: the applying thread only forks, later records go
to a fresh WAL, and a crash at any point (the child killed mid-write, the parent gone, the
rotation half done) loses nothing."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from kvnode import commands
from kvnode.storage.background import FORK_TIMES
from kvnode.storage.errors import StorageFailure
from kvnode.storage.layout import PREVIOUS_WAL_FILE, STATE_FILE, WAL_FILE
from kvnode.storage.machine import Entry, StateMachine
from tests.waiting import wait_until_sync

ENTRIES = 400
CHILD_SECONDS = 60  # deadline for the held child to reach its point, and to die


def machine(path: Path) -> StateMachine:
    return StateMachine(
        path, checkpoint_entries=100, checkpoint_seconds=3600, background_checkpoints=True
    )


def exited(pid: int) -> bool:
    """True once `pid` is a zombie (dead, not yet reaped by its parent, this process)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def fill(sm: StateMachine, start: int, count: int) -> None:
    for index in range(start, start + count):
        sm.apply(
            [Entry(index, 1, commands.put(f"k{index % 150}", b"v%d" % index, issued_at_ms=index))]
        )


def test_a_background_checkpoint_replaces_the_wal_it_covers(tmp_path: Path) -> None:
    sm = machine(tmp_path)
    fill(sm, 1, ENTRIES)
    sm.close(checkpoint=False)  # waits for the child
    assert not (tmp_path / PREVIOUS_WAL_FILE).exists()
    counts, seconds = sm.checkpoint_timings.snapshot()
    assert sum(counts) >= 1 and seconds > 0, "a reaped checkpoint child is timed for /metrics"
    applies, _seconds = sm.apply_timings.snapshot()
    assert sum(applies) == ENTRIES
    reopened = machine(tmp_path)
    assert reopened.last_applied == ENTRIES
    assert reopened.stats().entries_since_checkpoint < ENTRIES  # most came from state.data
    assert reopened.read("k5")[0] is not None
    reopened.close(checkpoint=False)


def held_checkpoint(tmp_path: Path) -> tuple[StateMachine, int, int, int]:
    """A machine whose background checkpoint child waits half-way through its write: the
    machine, the child's pid, and the pipe (read end, write end) whose write end the test
    closes to let it go on."""
    parent, reached = os.getpid(), tmp_path / "child-mid-write"
    held, holding = os.pipe()  # the child reads `held` until it is killed (or we close it)

    def hold_the_child(step: str) -> None:
        """In the child, half-way through the checkpoint: wait there."""
        if step == f"{STATE_FILE}:tmp-written" and os.getpid() != parent:
            os.close(holding)  # the parent's copy alone keeps the pipe open
            reached.touch()
            os.read(held, 1)  # returns only when the test process closes `holding`

    sm = StateMachine(
        tmp_path / "node",
        checkpoint_entries=100,
        checkpoint_seconds=3600,
        background_checkpoints=True,
        fault_hook=hold_the_child,
    )
    fill(sm, 1, 100)  # the 100th entry starts the checkpoint in a child
    child = sm._checkpointer.pid
    assert child, "no background checkpoint started"
    wait_until_sync(reached.exists, CHILD_SECONDS, "the child to reach its temporary file")
    return sm, child, held, holding


def test_a_child_killed_mid_checkpoint_stops_the_node_and_loses_nothing(tmp_path: Path) -> None:
    sm, child, held, holding = held_checkpoint(tmp_path)
    os.kill(child, signal.SIGKILL)
    os.close(holding)
    os.close(held)
    # A killed child at nice 19 on a busy machine takes a while to die; the parent is told
    # once it has.
    wait_until_sync(lambda: exited(child), CHILD_SECONDS, "the killed child to exit")
    applied = 101
    with pytest.raises(StorageFailure, match="background checkpoint failed"):
        fill(sm, applied, 1)  # the parent notices at its next sync, loudly
    assert (tmp_path / "node" / PREVIOUS_WAL_FILE).exists()
    reference = StateMachine(tmp_path / "reference")
    fill(reference, 1, applied)
    # The node stops (fail-stop) and starts again from its directory.
    reopened = StateMachine(tmp_path / "node")
    assert reopened.last_applied == applied and reopened.digest() == reference.digest()
    assert not (tmp_path / "node" / PREVIOUS_WAL_FILE).exists()  # checkpointed at once
    reopened.close(checkpoint=False)


def test_a_checkpoint_child_lets_go_of_the_node_s_sockets(tmp_path: Path) -> None:
    """A child still writing when its node is killed must not keep the node's ports: the
    node restarted at once has to listen on them again."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        sm, child, held, holding = held_checkpoint(tmp_path)
        links = [os.readlink(f"/proc/{child}/fd/{fd}") for fd in os.listdir(f"/proc/{child}/fd")]
        assert not [link for link in links if link.startswith("socket:")], links
        with socket.create_connection(listening.getsockname(), timeout=5):
            pass  # the parent's own socket is untouched
        os.close(holding)  # lets the child finish
        os.close(held)
    sm.close()  # waits for the child's checkpoint


def test_a_crash_inside_the_rotation_loses_nothing(tmp_path: Path) -> None:
    sm = StateMachine(tmp_path, checkpoint_entries=10_000)
    fill(sm, 1, 60)
    digest = sm.digest()
    sm.close(checkpoint=False)
    # The moment between "wal.log -> wal.prev" and the new wal.log being created.
    os.replace(tmp_path / WAL_FILE, tmp_path / PREVIOUS_WAL_FILE)
    reopened = StateMachine(tmp_path)
    assert reopened.last_applied == 60 and reopened.digest() == digest
    assert (tmp_path / WAL_FILE).exists() and (tmp_path / STATE_FILE).exists()
    reopened.close(checkpoint=False)


def reap_without_running_the_result(sm: StateMachine, retired: Path) -> Callable[[], None]:
    """Call sync_later until it has reaped the checkpoint child; return what that call left
    to its caller (the WAL's fsync, the retired WAL's removal), undone."""
    left: list[Callable[[], None] | None] = []

    def reaped() -> bool:
        left.append(sm.sync_later())
        return retired.exists()

    wait_until_sync(reaped, 60, "the checkpoint child to end and be reaped")
    pending = left[-1]
    assert pending is not None
    return pending


def test_a_crash_before_the_retired_wal_is_removed_is_harmless(tmp_path: Path) -> None:
    """The Raft node runs `sync_later`'s result in its sync thread: until then the covered
    WAL lies aside as a temporary file, which a restart deletes."""
    sm = machine(tmp_path)
    forks_before = FORK_TIMES.longest
    fill(sm, 1, 100)  # the 100th entry starts the checkpoint in a child
    assert FORK_TIMES.longest >= forks_before and FORK_TIMES.latest > 0  # the fork was timed
    retired = tmp_path / (PREVIOUS_WAL_FILE + ".tmp")
    reap_without_running_the_result(sm, retired)
    assert not (tmp_path / PREVIOUS_WAL_FILE).exists()
    reopened = machine(tmp_path)  # as if the node had crashed here
    assert not retired.exists()
    assert reopened.last_applied == 100 and reopened.read("k5")[0] is not None
    reopened.close(checkpoint=False)


def test_sync_later_leaves_the_retired_wal_and_the_fsync_to_its_caller(tmp_path: Path) -> None:
    sm = machine(tmp_path)
    fill(sm, 1, 100)  # starts a background checkpoint
    retired = tmp_path / (PREVIOUS_WAL_FILE + ".tmp")
    reap_without_running_the_result(sm, retired)()
    assert not retired.exists()
    sm.append([Entry(101, 1, commands.put("k", b"v", issued_at_ms=101))])
    pending = sm.sync_later()
    assert pending is not None  # the WAL's fsync, in the caller's thread
    pending()
    assert sm.sync_later() is None  # nothing left to sync
    sm.close(checkpoint=False)
