"""Making a node's data directory from a backup (`kvnode restore`).

The backup is a snapshot image at index N, term T (`GET /snapshot`). The node
gets it twice: as its state-machine checkpoint, and as its Raft snapshot with
the log bookkeeping of a log that ends at N. So PySyncObj starts with its log
at N and applies nothing twice; restoring the same file to every node of a new
cluster gives them all the same log prefix, and they elect a leader as usual.
Everything in the image comes back: keys and their TTL deadlines, leases, and
the request-id table (a retried request still gets its first answer).

All or nothing: the directory is marked `restore.incomplete` (durably) before
anything else is written into it, and the mark goes last. A node refuses to
start on a marked directory, and a restore run again on it starts over.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from kvnode.config import ConfigError, NodeConfig
from kvnode.raft.pysyncobj.node import write_restored_snapshot
from kvnode.storage.fileformat import atomic_write, fsync_dir
from kvnode.storage.image import StateImage
from kvnode.storage.layout import RESTORE_MARK, STATE_MACHINE_DIR, prepare_node_dir
from kvnode.storage.machine import StateMachine
from kvnode.storage.snapshot import read_snapshot

log = logging.getLogger(__name__)


def restore_node(config: NodeConfig, backup: Path) -> StateImage:
    """Verify `backup` and create `config.data_dir` from it; refuses a non-empty directory
    unless an earlier restore into it did not finish."""
    data_dir = Path(config.data_dir)
    image = read_snapshot(backup)  # checks the CRC of the whole file
    _start_over(data_dir)
    atomic_write(data_dir / RESTORE_MARK, b"", durable=True)
    prepare_node_dir(data_dir, restoring=True)
    machine = StateMachine(data_dir / STATE_MACHINE_DIR, fsync=config.durable)
    try:
        machine.install(image)
        if image.index > 0:
            voters = (config.raft_addr, *config.peers)
            write_restored_snapshot(machine, data_dir, image.index, image.term, voters)
    finally:
        machine.close(checkpoint=False)
    (data_dir / RESTORE_MARK).unlink()
    fsync_dir(data_dir)
    return image


def _start_over(data_dir: Path) -> None:
    """An empty (or absent) directory, ready for the restore; what an unfinished restore
    left is removed, anything else is refused."""
    data_dir.mkdir(parents=True, exist_ok=True)
    entries = list(data_dir.iterdir())
    if not entries:
        return
    if not (data_dir / RESTORE_MARK).exists():
        raise ConfigError(
            f"data_dir {data_dir} is not empty: restore makes a new node's directory, and"
            " never overwrites one (move it away first)"
        )
    log.warning("%s: an earlier restore did not finish; starting over", data_dir)
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        elif entry.name != RESTORE_MARK:
            entry.unlink()
