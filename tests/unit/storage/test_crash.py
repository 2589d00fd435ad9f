"""Crash safety by really crashing: SIGKILL a process that is applying entries, then recover."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kvnode.storage.checkpoint import CHECKPOINT_STEPS
from kvnode.storage.machine import StateMachine
from tests.unit.storage.conftest import assert_matches_model
from tests.unit.storage.model import Model, op_stream
from tests.waiting import wait_until_sync

WORKER = Path(__file__).with_name("crash_worker.py")
KILLS = 60
SEED = 20261125


def start_worker(directory: Path, progress: Path, max_index: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(directory),
            str(SEED),
            str(progress),
            str(max_index),
            *extra,
        ]
    )


def acknowledged(progress: Path) -> list[int]:
    """Indexes the worker reported as applied (complete lines only)."""
    text = progress.read_text() if progress.exists() else ""
    return [int(line) for line in text.split("\n")[:-1]]


def wait_for_progress(progress: Path, proc: subprocess.Popen, at_least: int) -> None:
    def reported() -> bool:
        assert proc.poll() is None, "worker exited before reporting progress"
        return len(acknowledged(progress)) >= at_least

    wait_until_sync(reported, 30, "the worker to report progress", poll=0.005)


class ModelAtIndex:
    """The reference model, advanced lazily along the same deterministic log."""

    def __init__(self) -> None:
        self.model = Model()
        self._stream = op_stream(SEED)
        self._pending = next(self._stream)

    def advance_to(self, index: int) -> Model:
        while self._pending[0] <= index:
            _index, _term, op = self._pending
            self.model.apply(op)
            self._pending = next(self._stream)
        return self.model


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_applied_entry(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory, progress = tmp_path / "sm", tmp_path / "progress"
    reference = ModelAtIndex()
    last_applied = 0
    for _kill in range(KILLS):
        before = len(acknowledged(progress))
        proc = start_worker(directory, progress, 10_000_000)
        wait_for_progress(progress, proc, before + 1)
        try:  # let it run for a random moment, then pull the plug
            proc.wait(timeout=rng.uniform(0.0, 0.25))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL

        machine = StateMachine(directory)
        acked = acknowledged(progress)
        assert machine.last_applied >= max(acked), "an index reported as applied was lost"
        assert machine.last_applied >= last_applied, "last_applied went backwards"
        last_applied = machine.last_applied
        assert_matches_model(machine, reference.advance_to(last_applied))
        machine.close(checkpoint=False)
    assert last_applied > 1000, "the workers applied too little for the test to mean anything"


@pytest.mark.parametrize("step", CHECKPOINT_STEPS)
def test_crash_at_each_checkpoint_step_recovers_the_same_state(tmp_path: Path, step: str) -> None:
    directory, progress = tmp_path / "sm", tmp_path / "progress"
    proc = start_worker(directory, progress, 3_000, step)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the worker never reached step {step}"

    machine = StateMachine(directory)
    assert machine.last_applied >= max(acknowledged(progress), default=0)
    assert_matches_model(machine, ModelAtIndex().advance_to(machine.last_applied))
    # The recovered directory keeps working: finish the log and compare again.
    machine.close(checkpoint=False)
    finish = start_worker(directory, progress, 3_000)
    assert finish.wait(timeout=60) == 0
    machine = StateMachine(directory)
    assert_matches_model(machine, ModelAtIndex().advance_to(machine.last_applied))
    machine.close()
