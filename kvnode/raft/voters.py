"""The voters a node starts with: its config's `peers` the first time, then what it last knew.

Once the cluster's membership can change, the config file is only the first
word: the log and snapshots carry every later change, and PySyncObj follows
them. But PySyncObj needs a set of voters to start from, before it has read
its snapshot, and a node that joined a running cluster (`--join`) has no
peers in its config at all; started alone, it would elect itself. So every
node keeps `raft.members`: the voters (itself included) as it last knew them,
written atomically whenever they change. When the file exists it replaces the
config's `peers`, as etcd ignores `--initial-cluster` once a member has data.

Layout: header b"KVN\\0" b"RMEM" u16 version=1, then the addresses as UTF-8
lines, and a crc32 of all preceding bytes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from pathlib import Path

from kvnode.config import NodeConfig, validate
from kvnode.storage.fileformat import (
    CRC,
    HEADER_SIZE,
    atomic_write,
    check_small_file,
    encode_small_file,
)
from kvnode.storage.layout import RAFT_MEMBERS

log = logging.getLogger(__name__)

KIND_MEMBERS = b"RMEM"
MEMBERS_VERSION = 1


def load_voters(data_dir: Path) -> list[str] | None:
    """Every voter's Raft address as this node last saved them (None: never saved)."""
    path = data_dir / RAFT_MEMBERS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    check_small_file(data, KIND_MEMBERS, MEMBERS_VERSION, path)
    return data[HEADER_SIZE : -CRC.size].decode().split()


def save_voters(data_dir: Path, voters: Iterable[str], *, durable: bool) -> None:
    body = "\n".join(sorted(voters)).encode()
    atomic_write(
        data_dir / RAFT_MEMBERS,
        encode_small_file(KIND_MEMBERS, MEMBERS_VERSION, body),
        durable=durable,
    )


def with_known_voters(config: NodeConfig) -> NodeConfig:
    """`config` with `peers` from `raft.members` when this node has saved its voters."""
    voters = load_voters(Path(config.data_dir))
    if voters is None:
        return config
    peers = tuple(v for v in voters if v != config.raft_addr)
    if set(peers) != set(config.peers):
        log.info(
            "starting with the voters this node last knew (%s), not the config's peers (%s)",
            ", ".join(voters),
            ", ".join(config.peers) or "none",
        )
    if config.join:
        log.info("already a member (%s holds its voters): not joining again", RAFT_MEMBERS)
    known = dataclasses.replace(config, peers=peers, join="")
    validate(known)
    return known
