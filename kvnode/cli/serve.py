"""`kvnode serve`: run one node."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import click

from kvnode.cli.common import (
    EXIT_CONFIG,
    EXIT_STORAGE,
    configure_logging,
    fail,
    main,
)
from kvnode.config import FSYNC_MODES, INITIAL_STATES, LOG_LEVELS, ConfigError, load_config
from kvnode.storage.errors import StorageError


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--node-id", help="Name of this node (logs, X-KV-Node).")
@click.option("--raft-addr", help="host:port for Raft peer traffic.")
@click.option("--peers", help="Comma-separated raft_addr of the other nodes.")
@click.option("--http-addr", help="host:port of the HTTP API.")
@click.option(
    "--advertise-url",
    help="The URL others reach this node's HTTP API at (default: from --http-addr).",
)
@click.option(
    "--join",
    help="URL of a running cluster: ask it to add this (empty) node, then catch up from it.",
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where this node keeps data.")
@click.option(
    "--fsync",
    type=click.Choice(FSYNC_MODES),
    help="always (default): nothing is acknowledged before it is on disk. never: for "
    "benchmarks only; survives kill -9 but NOT power loss.",
)
@click.option("--cluster-secret", help="Shared secret for peer traffic (or KVNODE_CLUSTER_SECRET).")
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Allow a multi-node node without a cluster secret (trusted networks only).",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS))
@click.option(
    "--initial-state",
    type=click.Choice(INITIAL_STATES),
    help="existing: this node replaces a lost one in a running cluster; with an empty data"
    " directory it neither votes nor stands for election until it holds the current log.",
)
@click.option(
    "--repair",
    is_flag=True,
    default=None,
    help="Truncate a damaged state-machine WAL at the damage instead of refusing to start.",
)
def serve(config_path: Path | None, **flags: Any) -> None:
    """Run one kvnode node until SIGTERM or Ctrl-C.

    \b
    Examples:
      kvnode serve --config configs/node1.toml
      KVNODE_HTTP_ADDR=127.0.0.1:9001 kvnode serve --config configs/local.toml
      kvnode serve --node-id solo --data-dir /tmp/solo   # a single-node cluster
      kvnode serve --config node4.toml --join http://127.0.0.1:8001   # grow a cluster
    """
    import uvloop

    from kvnode.server import serve as run_server

    try:
        config = load_config(config_path, flags)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    configure_logging(config.log_level, config.node_id)
    if config.peers and config.insecure and not config.cluster_secret:
        logging.getLogger("kvnode").warning(
            "running WITHOUT a cluster secret: anyone who reaches %s can take part in this"
            " cluster's Raft (vote, replicate, overwrite data)",
            config.raft_addr,
        )
    if config.unsafe_local_reads:
        logging.getLogger("kvnode").warning(
            "unsafe_local_reads is set: reads are NOT linearizable (a test-only setting)"
        )
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_server(config))
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StorageError as exc:
        fail(f"refusing to start: {exc}", EXIT_STORAGE)
