"""What a kvnode data directory holds, by name, and the guard against someone else's.

    <data_dir>/
      kvnode.lock     held (flock) by the one node using the directory (storage/dir_lock.py)
      restore.incomplete  present while `kvnode restore` fills the directory
      raft.journal    the Raft log (raft/pysyncobj/journal.py)
      raft.meta       term, vote and commit index
      raft.snapshot   the last Raft snapshot: a kvnode snapshot image
      raft.catching-up  present while a replacement node may not vote (raft/catch_up.py)
      raft.members    the voters this node last knew, to start with (raft/voters.py)
      sm/             the state machine (storage/machine.py):
        wal.log       commands applied since the checkpoint (storage/wal.py)
        wal.prev      the WAL before it, while a background checkpoint is written
        state.data    the checkpoint (storage/image.py)
        metadata.bin  which checkpoint is current (storage/checkpoint.py)
      watch/          the recent changes, for watches after a restart (watch/segments.py):
        history-<revision>.seg

Every other module takes its file names from here, so the layout can be read
(and changed) in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from kvnode.storage.errors import CorruptFile, NotKvnodeFile, StorageFailure

DATA_DIR_LOCK = "kvnode.lock"
RESTORE_MARK = "restore.incomplete"
RAFT_JOURNAL = "raft.journal"
RAFT_META = "raft.meta"
RAFT_SNAPSHOT = "raft.snapshot"
CATCHING_UP = "raft.catching-up"
RAFT_MEMBERS = "raft.members"
STATE_MACHINE_DIR = "sm"
WATCH_DIR = "watch"
WRITE_PROBE = ".write-probe"  # briefly, while a starting node checks the disk takes writes
WRITE_PROBE_BYTES = 1024 * 1024  # room for at least a few journal entries and a meta file
WAL_FILE = "wal.log"
PREVIOUS_WAL_FILE = "wal.prev"
STATE_FILE = "state.data"
METADATA_FILE = "metadata.bin"
NODE_ENTRIES = frozenset(
    {
        DATA_DIR_LOCK,
        RESTORE_MARK,
        RAFT_JOURNAL,
        RAFT_META,
        RAFT_SNAPSHOT,
        CATCHING_UP,
        RAFT_MEMBERS,
        STATE_MACHINE_DIR,
        WATCH_DIR,
        WRITE_PROBE,
    }
)
STATE_MACHINE_ENTRIES = frozenset({WAL_FILE, PREVIOUS_WAL_FILE, STATE_FILE, METADATA_FILE})


def is_state_machine_file(name: str) -> bool:
    return name in STATE_MACHINE_ENTRIES


def refuse_foreign(directory: Path, names: list[str], advice: str) -> None:
    """The one "not kvnode's directory" error: `names` are the files that are not ours."""
    if names:
        raise NotKvnodeFile(
            directory,
            f"not a kvnode data directory (it holds {', '.join(sorted(names)[:5])}); {advice}",
        )


def check_node_dir(data_dir: Path, *, restoring: bool = False) -> None:
    """A node's directory must be empty or hold at least one of kvnode's own entries, and
    (but to `kvnode restore` itself) not be one that a restore left unfinished."""
    if not data_dir.exists():
        return
    names = [p.name for p in data_dir.iterdir()]
    if not NODE_ENTRIES & set(names):
        refuse_foreign(data_dir, names, "use an empty directory")
    if RESTORE_MARK in names and not restoring:
        raise CorruptFile(
            data_dir / RESTORE_MARK,
            "a `kvnode restore` into this directory did not finish, so it holds only part"
            " of the backup; run the restore again (it starts over)",
        )


def prepare_node_dir(data_dir: Path, *, restoring: bool = False) -> None:
    """Create a node's directory, or check that an existing one is kvnode's; then refuse to
    start on one that cannot take a write (a full or read-only disk): the node would
    otherwise join, fall behind and stop at its first journal append."""
    check_node_dir(data_dir, restoring=restoring)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # made by an older kvnode, or by hand: its files are private
    probe = data_dir / WRITE_PROBE
    try:
        with open(probe, "wb") as handle:
            handle.write(bytes(WRITE_PROBE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise StorageFailure(data_dir, f"cannot write to the data directory: {exc}") from None
    finally:
        probe.unlink(missing_ok=True)
