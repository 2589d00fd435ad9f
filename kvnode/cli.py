"""The `kvnode` command line: run a node, run a local cluster, and talk to a cluster."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from kvnode.config import ConfigError, load_config
from kvnode.storage.errors import StorageError

EXIT_CONFIG = 2
EXIT_STORAGE = 3


def configure_logging(level: str, node_id: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s [{node_id}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def fail(message: str, code: int) -> None:
    click.echo(f"kvnode: {message}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """kvnode: a Raft-replicated, durable key-value server."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--node-id", help="Name of this node (logs, X-KV-Node).")
@click.option("--raft-addr", help="host:port for Raft peer traffic.")
@click.option("--peers", help="Comma-separated raft_addr of the other nodes.")
@click.option("--http-addr", help="host:port of the HTTP API.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where this node keeps data.")
@click.option(
    "--fsync",
    type=click.Choice(["always", "never"]),
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
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
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
    """
    from kvnode.server import serve as run_server

    try:
        config = load_config(config_path, flags)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    configure_logging(config.log_level, config.node_id)
    if config.peers and config.insecure and not config.cluster_secret:
        logging.getLogger("kvnode").warning(
            "running WITHOUT a cluster secret: anyone who reaches %s can run code on this node",
            config.raft_addr,
        )
    try:
        asyncio.run(run_server(config))
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StorageError as exc:
        fail(f"refusing to start: {exc}", EXIT_STORAGE)
