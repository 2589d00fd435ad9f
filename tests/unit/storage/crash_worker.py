"""Subprocess for the crash tests: applies a deterministic log to a StateMachine until killed.

Usage: python crash_worker.py DIR SEED PROGRESS_FILE MAX_INDEX [CRASH_STEP]

After each apply() returns, the batch's last index is appended to
PROGRESS_FILE; the parent kills this process at random moments and checks that
every index written there survived. With CRASH_STEP, the process SIGKILLs
itself the first time the checkpoint sequence reaches that step.
"""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from kvnode.storage.machine import Entry, StateMachine
from tests.unit.storage.model import encode, op_stream


def main() -> None:
    directory, seed, progress_path, max_index = sys.argv[1:5]
    crash_step = sys.argv[5] if len(sys.argv) > 5 else None

    def fault_hook(step: str) -> None:
        if step == crash_step:
            os.kill(os.getpid(), signal.SIGKILL)

    machine = StateMachine(
        directory, checkpoint_entries=97, checkpoint_seconds=0.05, fault_hook=fault_hook
    )
    progress = os.open(progress_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rng = random.Random(int(seed) ^ os.getpid())
    batch: list[Entry] = []
    target = rng.choice([1, 8, 64])
    # Start from the first entry every time: re-delivery of applied entries is part of the test.
    for index, term, op in op_stream(int(seed)):
        if index > int(max_index):
            break
        batch.append(Entry(index, term, encode(op)))
        if len(batch) >= target:
            machine.apply(batch)
            os.write(progress, f"{batch[-1].index}\n".encode())
            batch, target = [], rng.choice([1, 8, 64])
    if batch:
        machine.apply(batch)
        os.write(progress, f"{batch[-1].index}\n".encode())


if __name__ == "__main__":
    main()
