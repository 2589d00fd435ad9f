"""`kvnode cluster`: run a local multi-node cluster and control its nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from kvnode.cli.common import (
    DEFAULT_CLUSTER_DATA,
    EXIT_FAILED,
    echo_json,
    fail,
    main,
)
from kvnode.cluster.control import RESTART_POLICIES, SIGNALS, ControlError
from kvnode.cluster.control import socket_path as control_socket_path
from kvnode.config import FSYNC_MODES


@main.group()
def cluster() -> None:
    """Run a local multi-node cluster (no Docker needed) and control its nodes."""


cluster_data_option = click.option(
    "--data",
    "data_dir",
    default=DEFAULT_CLUSTER_DATA,
    envvar="KVNODE_CLUSTER_DATA",
    show_default=True,
    help="Parent directory of the nodes' data (data/node1, ...); names the cluster"
    " (KVNODE_CLUSTER_DATA).",
)


@cluster.command("up")
@click.option("--size", default=3, show_default=True, type=click.IntRange(1, 9))
@cluster_data_option
@click.option(
    "--http-port",
    default=8001,
    envvar="KVNODE_CLUSTER_HTTP_PORT",
    show_default=True,
    help="HTTP port of node1, +1 for each further node (KVNODE_CLUSTER_HTTP_PORT).",
)
@click.option(
    "--raft-port",
    default=4321,
    envvar="KVNODE_CLUSTER_RAFT_PORT",
    show_default=True,
    help="Raft port of node1, +1 for each further node (KVNODE_CLUSTER_RAFT_PORT).",
)
@click.option("--fsync", type=click.Choice(FSYNC_MODES), default="always", show_default=True)
@click.option(
    "--restart",
    "restart_policy",
    type=click.Choice(RESTART_POLICIES),
    default="no",
    show_default=True,
    help="on-failure: bring back a node that exits on its own (backoff 1 s doubling to 30 s);"
    " not one stopped or killed with `kvnode cluster`.",
)
def cluster_up(
    size: int, data_dir: str, http_port: int, raft_port: int, fsync: str, restart_policy: str
) -> None:
    """Start SIZE nodes on 127.0.0.1, print their URLs once a leader exists, and stream
    their logs until Ctrl-C, which stops them all.

    A node that exits (kill -9, a crash) does not stop the others; bring it back with
    `kvnode cluster start NODE` from another terminal.

    \b
    Example:
      kvnode cluster up
      curl -X PUT 'localhost:8001/kv/foo?ttl=10' --data-binary bar
      curl localhost:8002/kv/foo
    """
    from kvnode.cluster.foreground import ForegroundCluster
    from kvnode.cluster.supervisor import LocalCluster

    try:
        base = Path(data_dir).resolve()
        control_socket_path(base)  # a path too long for the socket fails before any start
        local = LocalCluster(
            base,
            size=size,
            http_ports=[http_port + i for i in range(size)],
            raft_ports=[raft_port + i for i in range(size)],
            settings={"fsync": fsync},
            log_to_files=False,
        )
        foreground = ForegroundCluster(local, data_dir, restart_policy, echo=click.echo)
        asyncio.run(foreground.run())
    except ControlError as exc:
        fail(str(exc), exc.exit_code)
    except TimeoutError as exc:
        fail(f"the cluster did not come up: {exc}", EXIT_FAILED)


def ask_cluster(data_dir: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the `cluster up` of `data_dir`; a refusal is one line + its code."""
    from kvnode.cluster.control import ask

    try:
        return asyncio.run(ask(Path(data_dir), request))
    except ControlError as exc:
        fail(str(exc), exc.exit_code)


NODE_HELP = "NODE is node2, 2, or leader (whichever node leads now)."


@cluster.command("ps")
@cluster_data_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cluster_ps(data_dir: str, as_json: bool) -> None:
    """One row per node of the running `cluster up`: pid, state, role, term, applied index."""
    rows = ask_cluster(data_dir, {"op": "ps"})["nodes"]
    if as_json:
        echo_json(rows)
        return
    click.echo(f"{'NODE':8} {'PID':>8}  {'STATE':24} {'ROLE':10} {'TERM':>5} {'APPLIED':>8}  URL")
    for row in rows:
        cells = {k: "-" if v is None else v for k, v in row.items()}
        click.echo(
            f"{cells['node']:8} {cells['pid']:>8}  {cells['state']:24} {cells['role']:10}"
            f" {cells['term']:>5} {cells['applied_index']:>8}  {cells['url']}"
        )


def node_command(name: str, summary: str) -> Any:
    """A `kvnode cluster <name> NODE` command that sends one control request."""

    @cluster_data_option
    @click.argument("node")
    def command(node: str, data_dir: str) -> None:
        click.echo(ask_cluster(data_dir, {"op": name, "node": node})["message"])

    command.__doc__ = f"{summary}\n\n{NODE_HELP}"
    return cluster.command(name)(command)


@cluster.command("add")
@cluster_data_option
def cluster_add(data_dir: str) -> None:
    """Grow the running `cluster up` by one node: it gets the next free ports, joins
    through a running member (`kvnode serve --join`), and catches up from the leader.

    Remove a node with `kvnode member remove NODE`, then stop it."""
    click.echo(ask_cluster(data_dir, {"op": "add"})["message"])


node_command("stop", "Stop NODE gracefully (SIGTERM, then wait for it to exit).")
node_command("start", "Start NODE again with its config and data; it rejoins and catches up.")
node_command("restart", "Stop NODE gracefully, then start it again.")
node_command("pause", "Freeze NODE with SIGSTOP (it keeps its sockets but answers nothing).")
node_command("resume", "Unfreeze a paused NODE with SIGCONT.")


@cluster.command("kill")
@cluster_data_option
@click.option(
    "--signal",
    "signal_name",
    type=click.Choice(SIGNALS),
    default="KILL",
    show_default=True,
    help="KILL dies at once; TERM shuts down cleanly; STOP/CONT pause and resume.",
)
@click.argument("node")
def cluster_kill(node: str, data_dir: str, signal_name: str) -> None:
    """Send a signal to NODE (SIGKILL by default: it dies wherever it is).

    \b
    NODE is node2, 2, or leader (whichever node leads now).
    Examples:
      kvnode cluster kill leader
      kvnode cluster kill node2 --signal STOP
    """
    request = {"op": "kill", "node": node, "signal": signal_name}
    click.echo(ask_cluster(data_dir, request)["message"])
