"""One process per data directory, like etcd's and LevelDB's lock files.

A node holds an exclusive `flock` on `<data_dir>/kvnode.lock` for as long as it runs, with
its pid written inside. A second node given the same directory is refused at once: two
writers of one Raft journal would each acknowledge writes the other overwrites.

The lock also covers the node's forked writers (a background checkpoint, a Raft
snapshot): a fork shares the locked file, so the lock is free only when they have ended
too. After `kill -9` such a writer can still be running; it finishes and renames its file
into place. A restarted node waits for it, instead of starting on files an orphan is about
to replace (a checkpoint renamed over a newer one would make the directory unreadable).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from kvnode.storage.errors import StorageFailure
from kvnode.storage.layout import DATA_DIR_LOCK, check_node_dir

log = logging.getLogger(__name__)

WRITER_WAIT_SECONDS = 120.0  # a forked writer of a large state (GBs) may take this long
POLL_SECONDS = 0.05


def lock_data_dir(data_dir: Path, *, writer_wait: float = WRITER_WAIT_SECONDS) -> int:
    """Take `data_dir`'s lock for this process (creating the directory if need be) and
    return the descriptor, to keep open while the node runs. Raises StorageFailure when
    a live process holds it, or a dead node's writer still holds it after `writer_wait`."""
    check_node_dir(data_dir)  # never drop a lock file into someone else's directory
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DATA_DIR_LOCK
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(descriptor, path, writer_wait)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _acquire(descriptor: int, path: Path, writer_wait: float) -> None:
    deadline = time.monotonic() + writer_wait
    waiting_for: int | None = None
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if waiting_for is not None:
                log.info("the writer left by pid %d has finished; starting", waiting_for)
            return
        except BlockingIOError:
            pass
        owner = _owner(descriptor)
        if owner is not None and owner != os.getpid() and _alive(owner):
            raise StorageFailure(
                path.parent,
                f"in use by process {owner} (another kvnode node?): one node per data directory",
            )
        if waiting_for is None:
            waiting_for = owner or 0
            log.warning(
                "a checkpoint or snapshot writer forked by process %s (no longer running) still"
                " holds %s; waiting up to %.0f s for it to finish",
                owner if owner is not None else "unknown",
                path,
                writer_wait,
            )
        if time.monotonic() >= deadline:
            raise StorageFailure(
                path.parent,
                f"still locked after {writer_wait:.0f} s by a writer of process {owner},"
                " which is no longer running (find it with `fuser` and end it)",
            )
        time.sleep(POLL_SECONDS)


def _owner(descriptor: int) -> int | None:
    """The pid the holder wrote (None: unreadable, or written by no one yet)."""
    with contextlib.suppress(ValueError, OSError):
        return int(os.pread(descriptor, 32, 0).decode().strip())
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
