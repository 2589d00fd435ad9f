"""Making a node's data directory from a backup (`kvnode restore`).

The backup is a snapshot image at index N, term T (`GET /snapshot`). The node
gets it twice: as its state-machine checkpoint, and as its Raft snapshot with
the log bookkeeping of a log that ends at N. So PySyncObj starts with its log
at N and applies nothing twice; restoring the same file to every node of a new
cluster gives them all the same log prefix, and they elect a leader as usual.
Everything in the image comes back: keys and their TTL deadlines, leases, and
the request-id table (a retried request still gets its first answer).
"""

from __future__ import annotations

from pathlib import Path

from kvnode.config import ConfigError, NodeConfig
from kvnode.raft.pysyncobj.node import write_restored_snapshot
from kvnode.storage import StateMachine
from kvnode.storage.image import StateImage
from kvnode.storage.layout import STATE_MACHINE_DIR, prepare_node_dir
from kvnode.storage.snapshot import read_snapshot


def restore_node(config: NodeConfig, backup: Path) -> StateImage:
    """Verify `backup` and create `config.data_dir` from it; refuses a non-empty directory."""
    data_dir = Path(config.data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ConfigError(
            f"data_dir {data_dir} is not empty: restore makes a new node's directory, and"
            " never overwrites one (move it away first)"
        )
    image = read_snapshot(backup)  # checks the CRC of the whole file
    prepare_node_dir(data_dir)
    machine = StateMachine(data_dir / STATE_MACHINE_DIR, fsync=config.durable)
    try:
        machine.install(image)
        if image.index > 0:
            voters = (config.raft_addr, *config.peers)
            write_restored_snapshot(machine, data_dir, image.index, image.term, voters)
    finally:
        machine.close(checkpoint=False)
    return image
