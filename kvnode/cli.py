"""The `kvnode` command line: run a node, run a local cluster, and talk to a cluster."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from kvnode.bench import TARGETS, WORKLOADS
from kvnode.cluster import NEMESES
from kvnode.cluster.control import RESTART_POLICIES, SIGNALS, ControlError
from kvnode.cluster.control import socket_path as control_socket_path
from kvnode.config import FSYNC_MODES, INITIAL_STATES, LOG_LEVELS, ConfigError, load_config
from kvnode.contract import CONSISTENCY_MODES, DEFAULT_ENDPOINTS, DEFAULT_LIST_LIMIT
from kvnode.storage.errors import StorageError

if TYPE_CHECKING:
    from kvnode.client import Client, WriteResult

# A command keeps retrying (503 while no leader is known, an unknown outcome retried under
# its request id) for --timeout seconds: long enough for an election on a loaded machine.
DEFAULT_TIMEOUT_SECONDS = 30.0
ATTEMPT_SECONDS = 10.0  # one request at one node (the node itself answers 504 sooner)
EXIT_CONFIG = 2
EXIT_STORAGE = 3
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # how a watch or a keep-alive ends
T = TypeVar("T")
CLIENT_BOTTLENECK_SHARE = 0.7  # of one core, above which `kvnode bench` measures itself


def configure_logging(level: str, node_id: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s [{node_id}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def fail(message: str, code: int) -> NoReturn:
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
            "running WITHOUT a cluster secret: anyone who reaches %s can run code on this node",
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


@main.group()
def cluster() -> None:
    """Run a local multi-node cluster (no Docker needed) and control its nodes."""


DEFAULT_CLUSTER_DATA = "data"
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
        fail(f"the cluster did not come up: {exc}", 1)


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


# -- client commands ---------------------------------------------------------------------

DEFAULT_ENDPOINT_LIST = ",".join(DEFAULT_ENDPOINTS)
endpoints_option = click.option(
    "--endpoints",
    envvar="KVNODE_ENDPOINTS",
    default=DEFAULT_ENDPOINT_LIST,
    show_default=True,
    help="Comma-separated node addresses (KVNODE_ENDPOINTS).",
)


@dataclass(frozen=True)
class TlsFiles:
    """--cacert / --cert / --key: HTTPS when any is given."""

    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext | None:
        if not (self.cacert or self.cert):
            return None
        from kvnode.tls import client_context

        try:
            return client_context(self.cacert, self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            fail(f"cannot use the TLS files: {exc}", EXIT_CONFIG)


def local_cluster_target(cluster_id: str | None) -> tuple[str, str | None]:
    """Where a command with no --endpoints goes: the cluster that `kvnode cluster up` runs
    in ./data (its control socket says its addresses and id), else the default ports."""
    from kvnode.cluster.control import ControlError, ask

    data_dir = Path(os.environ.get("KVNODE_CLUSTER_DATA", DEFAULT_CLUSTER_DATA))
    try:
        info = asyncio.run(ask(data_dir, {"op": "info"}))
    except (ControlError, OSError, TimeoutError):
        return DEFAULT_ENDPOINT_LIST, cluster_id
    return ",".join(info["endpoints"]), cluster_id or info.get("cluster_id")


@dataclass(frozen=True)
class ClientOptions:
    """What every command that talks to a cluster takes: where, how long, as whom, and
    whether to print JSON."""

    endpoints: str
    as_json: bool
    timeout: float
    token: str | None
    tls: TlsFiles = TlsFiles()
    cluster_id: str | None = None

    def run(self, action: Callable[[Client], Awaitable[T]], *, keep_trying: bool = False) -> T:
        """Run `action(client)`; client errors become one line and exit code 1. Retries stop
        after --timeout seconds, or never with `keep_trying` (a watch outlives outages)."""
        from kvnode.client import Client, KvError

        async def runner() -> T:
            endpoint_list = self.endpoints.split(",")
            deadline = float("inf") if keep_trying else self.timeout
            async with Client(
                endpoint_list,
                timeout=min(self.timeout, ATTEMPT_SECONDS),
                token=self.token,
                retry_reads=True,
                write_deadline=deadline,
                tls=self.tls.context(),
                cluster_id=self.cluster_id,
            ) as client:
                return await action(client)

        try:
            return asyncio.run(runner())
        except KvError as exc:
            fail(str(exc), 1)
        except ValueError as exc:
            fail(str(exc), EXIT_CONFIG)

    def run_until_stopped(
        self, action: Callable[[Client], Awaitable[None]], *, keep_trying: bool = True
    ) -> None:
        """Run a command that only a signal ends (a watch, a keep-alive): SIGINT or SIGTERM
        stops it with exit code 0. The handlers are the command's own, so it stops even
        when started with SIGINT ignored (a shell's background job: `kvnode watch k &`)."""

        async def until_signalled(client: Client) -> None:
            loop = asyncio.get_running_loop()
            stopped = asyncio.Event()
            for number in STOP_SIGNALS:
                loop.add_signal_handler(number, stopped.set)
            following = asyncio.ensure_future(action(client))
            stopping = asyncio.ensure_future(stopped.wait())
            await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not following.done():
                following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following  # raises what ended it, unless a signal did

        self.run(until_signalled, keep_trying=keep_trying)


def client_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command --endpoints, --json, --timeout, --token and the TLS options, handed to
    it as `client` (a ClientOptions)."""

    @click.option(
        "--endpoints",
        envvar="KVNODE_ENDPOINTS",
        help="Comma-separated node addresses (KVNODE_ENDPOINTS). Default: the cluster that"
        f" `kvnode cluster up` runs in ./{DEFAULT_CLUSTER_DATA} (or KVNODE_CLUSTER_DATA), else"
        f" {DEFAULT_ENDPOINT_LIST}.",
    )
    @click.option(
        "--cluster-id",
        envvar="KVNODE_CLUSTER_ID",
        help="Talk only to nodes of this cluster (KVNODE_CLUSTER_ID); a node of another is"
        " refused before it acts. Default: the id of the cluster found in ./data, if any.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option(
        "--timeout",
        default=DEFAULT_TIMEOUT_SECONDS,
        show_default=True,
        type=click.FloatRange(0, min_open=True),
        help="Seconds to keep trying, through a leader election, before giving up (each"
        " attempt at one node gets at most 10 s); a write given up on is reported as"
        " indeterminate, never as failed.",
    )
    @click.option(
        "--token", envvar="KVNODE_TOKEN", help="Bearer token, when the nodes set auth_token."
    )
    @click.option(
        "--cacert",
        envvar="KVNODE_CACERT",
        type=click.Path(exists=True, dir_okay=False),
        help="Talk HTTPS, trusting this CA (KVNODE_CACERT).",
    )
    @click.option(
        "--cert",
        envvar="KVNODE_CERT",
        type=click.Path(exists=True, dir_okay=False),
        help="Client certificate, for nodes that require one (KVNODE_CERT).",
    )
    @click.option(
        "--key",
        "key_file",
        envvar="KVNODE_KEY",
        type=click.Path(exists=True, dir_okay=False),
        help="The client certificate's private key (KVNODE_KEY).",
    )
    @functools.wraps(command)
    def with_client(
        *args: Any,
        endpoints: str | None,
        cluster_id: str | None,
        as_json: bool,
        timeout: float,
        token: str | None,
        cacert: str | None,
        cert: str | None,
        key_file: str | None,
        **kw: Any,
    ) -> None:
        tls = TlsFiles(cacert, cert, key_file)
        if endpoints is None:
            endpoints, cluster_id = local_cluster_target(cluster_id)
        options = ClientOptions(endpoints, as_json, timeout, token, tls, cluster_id)
        command(*args, client=options, **kw)

    return with_client


def echo_json(value: Any, *, one_line: bool = False) -> None:
    """Print `value` as JSON: indented, or on one line (a stream of them, like NDJSON)."""
    import orjson

    click.echo(orjson.dumps(value, option=0 if one_line else orjson.OPT_INDENT_2).decode())


def echo_write(result: WriteResult, as_json: bool, verb: str) -> None:
    """One line (or JSON) for a write that took effect."""
    if as_json:
        echo_json(result.__dict__)
    else:
        click.echo(f"{verb} {result.key} at revision {result.revision}")


def read_value(value: str | None) -> bytes:
    return value.encode() if value is not None else sys.stdin.buffer.read()


@main.command()
@click.argument("key")
@click.argument("value", required=False)
@click.option("--ttl", type=float, help="Seconds until the key expires.")
@click.option("--lease", type=click.IntRange(1), help="Attach KEY to this lease (kvnode lease).")
@client_command
def put(
    key: str, value: str | None, ttl: float | None, lease: int | None, client: ClientOptions
) -> None:
    """Set KEY to VALUE (or to standard input when VALUE is omitted).

    \b
    Examples:
      kvnode put greeting hello
      kvnode put session/42 token --ttl 30
      kvnode put services/web 10.0.0.5 --lease 1234
      cat photo.jpg | kvnode put photos/1
    """
    data = read_value(value)
    result = client.run(lambda c: c.put(key, data, ttl=ttl, lease=lease))
    echo_write(result, client.as_json, "created" if result.created else "updated")


@main.command()
@click.argument("key")
@click.option(
    "--consistency",
    type=click.Choice(CONSISTENCY_MODES),
    default="linearizable",
    show_default=True,
)
@client_command
def get(key: str, consistency: str, client: ClientOptions) -> None:
    """Print the value of KEY (exit code 1 if it does not exist).

    \b
    Examples:
      kvnode get greeting
      kvnode get greeting --consistency stale --json
    """
    found = client.run(lambda c: c.get(key, consistency=consistency))
    if found is None:
        fail(f"key {key!r} not found", 1)
    if client.as_json:
        echo_json(
            {
                "key": key,
                "value": found.value.decode(errors="replace"),
                "revision": found.revision,
                "create_revision": found.create_revision,
                "expire_at": found.expire_at,
            }
        )
    else:
        sys.stdout.buffer.write(found.value + b"\n")


@main.command()
@click.argument("key")
@click.option("--prev-value", help="Only if the current value equals this.")
@click.option("--prev-revision", type=int, help="Only if the current revision equals this.")
@client_command
def delete(
    key: str, prev_value: str | None, prev_revision: int | None, client: ClientOptions
) -> None:
    """Delete KEY.

    \b
    Examples:
      kvnode delete greeting
      kvnode delete lock --prev-value me
    """
    expected = prev_value.encode() if prev_value is not None else None
    revision = client.run(lambda c: c.delete(key, prev_value=expected, prev_revision=prev_revision))
    if client.as_json:
        echo_json({"deleted": True, "revision": revision})
    else:
        click.echo(f"deleted {key} at revision {revision}")


@main.command()
@click.argument("key")
@click.argument("value", required=False)
@click.option("--prev-value", help="Swap only if the current value equals this.")
@click.option("--prev-revision", type=int, help="Swap only if the current revision equals this.")
@click.option("--create-only", is_flag=True, help="Swap only if KEY does not exist yet.")
@click.option("--ttl", type=float, help="Seconds until the key expires.")
@client_command
def cas(
    key: str,
    value: str | None,
    prev_value: str | None,
    prev_revision: int | None,
    create_only: bool,
    ttl: float | None,
    client: ClientOptions,
) -> None:
    """Compare-and-swap: set KEY to VALUE only if exactly one condition holds.

    \b
    Examples:
      kvnode cas counter 2 --prev-value 1
      kvnode cas lock me --create-only --ttl 10
      kvnode cas config v2 --prev-revision 17
    """
    given = sum(x is not None for x in (prev_value, prev_revision)) + int(create_only)
    if given != 1:
        fail("give exactly one of --prev-value, --prev-revision, --create-only", EXIT_CONFIG)
    data = read_value(value)
    expected = prev_value.encode() if prev_value is not None else None
    result = client.run(
        lambda c: c.put(
            key,
            data,
            ttl=ttl,
            prev_value=expected,
            prev_revision=prev_revision,
            prev_exist=False if create_only else None,
        )
    )
    echo_write(result, client.as_json, "swapped")


@main.command("list")
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("--limit", default=DEFAULT_LIST_LIMIT, show_default=True)
@click.option("--values", is_flag=True, help="Include values.")
@client_command
def list_keys(prefix: str, limit: int, values: bool, client: ClientOptions) -> None:
    """List keys in order.

    \b
    Examples:
      kvnode list --prefix session/
      kvnode list --values --json
    """
    items = client.run(lambda c: c.list(prefix, limit=limit, values=values))
    if client.as_json:
        echo_json(items)
        return
    for item in items:
        line = f"{item['key']}\trev {item['revision']}"
        if values:
            line += "\t" + item.get("value", item.get("value_base64", ""))
        click.echo(line)


@main.command()
@click.argument("key", required=False)
@click.option("--prefix", help="Watch every key under this prefix instead of one KEY.")
@click.option(
    "--from-revision",
    type=click.IntRange(0),
    help="Start at this revision (default: the next change). Resume with the last seen + 1.",
)
@client_command
def watch(
    key: str | None, prefix: str | None, from_revision: int | None, client: ClientOptions
) -> None:
    """Print each change of KEY (or of the keys under --prefix) as it happens, until Ctrl-C:
    "REVISION TYPE KEY [VALUE]", or with --json one JSON object per line.

    Follows one node and moves to another if that node fails, with nothing missed or
    repeated. Exit code 1 if the revision is older than the nodes keep (410).

    \b
    Examples:
      kvnode watch config/app
      kvnode watch --prefix services/ --from-revision 120 --json
    """
    if (key is None) == (prefix is None):
        fail("give a KEY or --prefix (one of them)", EXIT_CONFIG)

    async def follow(c: Client) -> None:
        async for event in c.watch(key, prefix=prefix, from_revision=from_revision):
            if client.as_json:
                echo_json(event.to_json(), one_line=True)
            else:
                shown = "" if event.value is None else " " + event.value.decode(errors="replace")
                click.echo(f"{event.revision} {event.type} {event.key}{shown}")

    client.run_until_stopped(follow)  # Ctrl-C is how a watch ends


@main.command()
@client_command
def status(client: ClientOptions) -> None:
    """Who leads, and is everyone caught up? One line per node.

    \b
    Example:
      kvnode status --endpoints 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003
    """
    from kvnode.client import KvError

    async def gather(c: Client) -> list[tuple[str, dict[str, Any] | None]]:
        results: list[tuple[str, dict[str, Any] | None]] = []
        for endpoint in c.endpoints:
            try:
                results.append((endpoint, await c.status(endpoint=endpoint)))
            except KvError:
                results.append((endpoint, None))
        return results

    results = client.run(gather)
    if client.as_json:
        echo_json(dict(results))
    else:
        click.echo(
            f"{'ENDPOINT':28} {'NODE':8} {'ROLE':10} {'TERM':>5} {'COMMIT':>8} {'APPLIED':>8}"
        )
        for endpoint, s in results:
            if s is None:
                click.echo(f"{endpoint:28} {'-':8} {'unreachable':10}")
                continue
            click.echo(
                f"{endpoint:28} {s['node_id']:8} {s['role']:10} {s['term']:>5} "
                f"{s['commit_index']:>8} {s['applied_index']:>8}"
            )
    if all(s is None for _e, s in results):
        sys.exit(1)


@main.command()
@endpoints_option
@click.option(
    "--workload",
    type=click.Choice(WORKLOADS),
    default="write",
    show_default=True,
)
@click.option("--target", type=click.Choice(TARGETS), default="kvnode", show_default=True)
@click.option(
    "--connections", default=16, show_default=True, help="Concurrent keep-alive connections."
)
@click.option("--duration", default=10.0, show_default=True, help="Seconds to measure.")
@click.option("--requests", type=int, help="Stop after this many requests instead of --duration.")
@click.option("--value-size", default=100, show_default=True, help="Bytes per value.")
@click.option("--keys", default=1000, show_default=True, help="Size of the key space.")
@click.option("--warmup", default=1.0, show_default=True, help="Seconds before measuring.")
@click.option("--seed", default=1, show_default=True)
@click.option(
    "--rate",
    default=500.0,
    show_default=True,
    help="Writes/s of the watch workload (its --connections are stream watchers).",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write results here.")
def bench(json_path: Path | None, rate: float, **options: Any) -> None:
    """Load-test a cluster and print ops/s and latency percentiles.

    \b
    The watch workload opens --connections stream watchers on the first endpoint
    and writes --rate changes/s to the keys they watch; it reports the delay
    from write to watcher.
    Examples:
      kvnode bench --connections 64 --duration 10
      kvnode bench --workload read --endpoints 127.0.0.1:8002
      kvnode bench --workload watch --connections 1000 --rate 500
      kvnode bench --target etcd-v2 --endpoints 127.0.0.1:2379 --json etcd.json
    """
    import orjson

    from kvnode.bench.load import BenchSettings, format_table, run_load

    endpoints = options.pop("endpoints").split(",")
    if options["workload"] == "watch":
        watch_bench(endpoints[0], rate, options, json_path)
        return
    result = asyncio.run(run_load(BenchSettings(endpoints=endpoints, **options)))
    click.echo(format_table([result]))
    share = result["client_core_share"]
    click.echo(f"this client used {share:.0%} of a core")
    if share > CLIENT_BOTTLENECK_SHARE:
        click.echo(
            "warning: the client may be the bottleneck; compare servers with"
            " scripts/bench-vs-etcd.sh, which drives them with a native generator (hey)",
            err=True,
        )
    if json_path:
        json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


def watch_bench(
    endpoint: str, rate: float, options: dict[str, Any], json_path: Path | None
) -> None:
    import orjson

    from kvnode.bench.watch import WatchBenchSettings, format_watch_result, run_watch_bench
    from kvnode.client import normalize_endpoint

    if options["target"] != "kvnode":
        fail("the watch workload runs against kvnode only", EXIT_CONFIG)
    settings = WatchBenchSettings(
        normalize_endpoint(endpoint),
        watchers=options["connections"],
        rate=rate,
        keys=options["keys"],
        duration=options["duration"],
        value_size=options["value_size"],
        seed=options["seed"],
    )
    result = asyncio.run(run_watch_bench(settings))
    click.echo(format_watch_result(result))
    if json_path:
        json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


@main.command()
@click.option("--duration", default=30.0, show_default=True, help="Seconds of faults and load.")
@click.option(
    "--nemesis",
    "nemeses",
    default="kill,pause",
    show_default=True,
    help=f"Comma-separated: {', '.join(NEMESES)}.",
)
@click.option("--seed", default=1, show_default=True)
@click.option("--clients", default=10, show_default=True)
@click.option("--rate", default=20.0, show_default=True, help="Operations/s per client.")
@click.option(
    "--watchers",
    default=2,
    show_default=True,
    type=click.IntRange(0),
    help="Clients watching every key through the faults; what they saw is checked too.",
)
@click.option(
    "--locks",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="`kvnode lock` contenders, paused, stopped and killed themselves; no two critical"
    " sections may overlap in time, and fencing tokens must grow.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report here.")
@click.option(
    "--history", "history_path", type=click.Path(path_type=Path), help="Save the raw history."
)
@click.option(
    "--check",
    "check_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Do not run: judge a history saved with --history again.",
)
def chaos(
    duration: float,
    nemeses: str,
    seed: int,
    clients: int,
    rate: float,
    watchers: int,
    locks: int,
    json_path: Path | None,
    history_path: Path | None,
    check_path: Path | None,
) -> None:
    """Run a local cluster under faults and check the history (exit 1 on any violation).

    \b
    Partitions run each node in its own network namespace and need root.
    Examples:
      kvnode chaos --duration 60 --nemesis kill,pause
      kvnode chaos --duration 60 --nemesis kill-leader,pause --locks 4
      kvnode chaos --duration 1800 --nemesis kill,pause,partition,wipe --json soak.json
      kvnode chaos --check history.json
    """
    import orjson

    from kvnode.cluster.chaos import (
        ChaosSettings,
        format_judgement,
        format_report,
        judge,
        run_chaos,
    )
    from kvnode.cluster.history import load_history
    from kvnode.cluster.netns import NetnsError, available

    if check_path is not None:
        try:
            history = load_history(check_path.read_bytes())
        except ValueError as exc:
            message = f"{check_path}: not a history saved by `kvnode chaos --history`: {exc}"
            fail(message, EXIT_CONFIG)
        judgement = judge(history)
        click.echo(f"operations: {len(history)}\n{format_judgement(judgement)}")
        if json_path:
            json_path.write_bytes(orjson.dumps(judgement, option=orjson.OPT_INDENT_2))
        sys.exit(0 if judgement["valid"] else 1)
    chosen = [n.strip() for n in nemeses.split(",") if n.strip()]
    if "partition" in chosen and (reason := available()):
        fail(reason, EXIT_CONFIG)
    settings = ChaosSettings(
        duration,
        chosen,
        seed,
        clients,
        rate,
        history_path=history_path,
        watchers=watchers,
        locks=locks,
    )
    try:
        report = asyncio.run(run_chaos(settings))
    except (ValueError, NetnsError) as exc:
        fail(str(exc), EXIT_CONFIG)
    click.echo(format_report(report))
    if json_path:
        json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    sys.exit(0 if report["valid"] else 1)


# The coordination (txn, lease, lock, elect), membership (member) and operations (backup,
# restore, export, import) commands register themselves on `main`.
from kvnode import cli_coordination, cli_membership, cli_operations  # noqa: E402, F401
