"""Checkpoints written by a forked child: the applying thread only forks, later records go
to a fresh WAL, and a crash at any point (the child killed mid-write, the parent gone, the
rotation half done) loses nothing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from kvnode import commands
from kvnode.storage import Entry, StateMachine
from kvnode.storage.errors import StorageFailure
from kvnode.storage.layout import PREVIOUS_WAL_FILE, STATE_FILE, WAL_FILE

ENTRIES = 400


def machine(path: Path) -> StateMachine:
    return StateMachine(
        path, checkpoint_entries=100, checkpoint_seconds=3600, background_checkpoints=True
    )


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
    reopened = machine(tmp_path)
    assert reopened.last_applied == ENTRIES
    assert reopened.stats()["entries_since_checkpoint"] < ENTRIES  # most came from state.data
    assert reopened.get("k5") is not None
    reopened.close(checkpoint=False)


def test_a_child_killed_mid_checkpoint_stops_the_node_and_loses_nothing(tmp_path: Path) -> None:
    sm = machine(tmp_path / "node")
    fill(sm, 1, 100)  # the 100th entry starts the checkpoint in a child
    child = sm._checkpointer.pid
    assert child, "no background checkpoint started"
    os.kill(child, signal.SIGKILL)
    applied = 100
    with pytest.raises(StorageFailure, match="background checkpoint failed"):
        for index in range(101, 200):  # the parent notices at its next sync, loudly
            applied = index
            fill(sm, index, 1)
    assert (tmp_path / "node" / PREVIOUS_WAL_FILE).exists()
    reference = StateMachine(tmp_path / "reference")
    fill(reference, 1, applied)
    # The node stops (fail-stop) and starts again from its directory.
    reopened = StateMachine(tmp_path / "node")
    assert reopened.last_applied == applied and reopened.digest() == reference.digest()
    assert not (tmp_path / "node" / PREVIOUS_WAL_FILE).exists()  # checkpointed at once
    reopened.close(checkpoint=False)


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
