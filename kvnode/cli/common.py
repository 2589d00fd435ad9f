"""What every `kvnode` command shares: the `main` group, exit codes, failing in one line,
and the options and runner of the commands that talk to a cluster."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.util
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

from kvnode.cluster.control import ControlError
from kvnode.contract import DEFAULT_ENDPOINTS

if TYPE_CHECKING:
    from kvnode.client import Client, KvError, WriteResult

# A command keeps retrying (503 while no leader is known, an unknown outcome retried under
# its request id) for --timeout seconds: long enough for an election on a loaded machine.
DEFAULT_TIMEOUT_SECONDS = 30.0
ATTEMPT_SECONDS = 10.0  # one request at one node (the node itself answers 504 sooner)
# Exit codes, one table for every command (docs/cli.md#exit-codes, and `kvnode --help`).
EXIT_FAILED = 1  # unavailable, unreachable, or any other failure the message names
EXIT_CONFIG = 2  # bad usage or configuration (click's usage errors exit 2 as well)
EXIT_STORAGE = 3  # a data directory or file that cannot be used
EXIT_NOT_FOUND = 4
EXIT_COMPARE_FAILED = 5
EXIT_UNAUTHORIZED = 6
EXIT_WRONG_CLUSTER = 7
EXIT_DEGRADED = 8  # `kvnode health`: a leader serves, but not every node is healthy
EXIT_INDETERMINATE = 9  # a write whose outcome is unknown: it may yet be applied
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # how a watch or a keep-alive ends
T = TypeVar("T")


def configure_logging(level: str, node_id: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s [{node_id}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def exit_code_for(error: KvError) -> int:
    """The exit code of a command that ended with `error` (see the EXIT_ table above)."""
    from kvnode.client import (
        CompareFailed,
        Indeterminate,
        NotFound,
        Unauthorized,
        WrongCluster,
    )

    codes: list[tuple[type[KvError], int]] = [
        (NotFound, EXIT_NOT_FOUND),
        (CompareFailed, EXIT_COMPARE_FAILED),
        (Unauthorized, EXIT_UNAUTHORIZED),
        (WrongCluster, EXIT_WRONG_CLUSTER),
        (Indeterminate, EXIT_INDETERMINATE),
    ]
    return next((code for kind, code in codes if isinstance(error, kind)), EXIT_FAILED)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"kvnode: {message}", err=True)
    sys.exit(code)


def report_option(draws: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--report DIR`: the run as a page, DIR/index.html, showing what `draws` says."""
    return click.option(
        "--report",
        "report_dir",
        type=click.Path(path_type=Path, file_okay=False),
        help=f"Write the run as a page, DIR/index.html: {draws} (needs kvnode[report]).",
    )


def require_plots(report_dir: Path | None) -> None:
    """`--report` draws with matplotlib (the `report` extra): said before any work starts."""
    if report_dir is not None and importlib.util.find_spec("matplotlib") is None:
        fail("--report draws with matplotlib: pip install 'kvnode[report]'", EXIT_CONFIG)


# Which module registers each command: a command's module is imported only when that
# command runs (or help lists them all), so `kvnode get` does not pay for the server, the
# storage code or the benchmarks. tests/unit/test_cli_modules.py keeps this complete.
COMMAND_MODULES = {
    **dict.fromkeys(("put", "get", "delete", "cas", "list", "watch"), "kvnode.cli.keys"),
    **dict.fromkeys(("health", "status"), "kvnode.cli.health"),
    **dict.fromkeys(("lock", "elect", "lease", "txn"), "kvnode.cli.coordination"),
    **dict.fromkeys(("backup", "restore", "export", "import"), "kvnode.cli.operations"),
    "member": "kvnode.cli.membership",
    "token": "kvnode.cli.tokens",
    "cluster": "kvnode.cli.cluster",
    "serve": "kvnode.cli.serve",
    "bench": "kvnode.cli.bench",
    "chaos": "kvnode.cli.chaos",
}


class LazyGroup(click.Group):
    """The `main` group: a command's module is imported when the command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(COMMAND_MODULES[cmd_name])
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Runs the command; one that needs a node's code in a client-only install (`pip
        install kvnode` without the `server` extra) says what to install, no traceback."""
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in SERVER_MODULES:
                raise
            fail(
                f"{ctx.invoked_subcommand} needs the server's packages, and {missing} is not"
                " installed: pip install 'kvnode[server]'",
                EXIT_CONFIG,
            )


# The top-level modules of the `server` extra's packages (pyproject.toml), which a
# client-only install lacks; tests/unit/test_cli_modules.py keeps the two in step.
SERVER_MODULES = frozenset(
    {"pysyncobj", "google", "sortedcontainers", "prometheus_client", "cryptography", "uvloop"}
)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvnode", prog_name="kvnode", message="%(prog)s %(version)s")
def main() -> None:
    """kvnode: a Raft-replicated, durable key-value server.

    \b
    Exit codes: 0 done; 1 unavailable or unreachable (or another failure);
    2 bad usage or configuration; 3 unusable data directory or file; 4 not found;
    5 compare failed; 6 unauthorized; 7 wrong cluster; 8 degraded (health);
    9 outcome unknown (the write may yet be applied); 125 lock lost (lock, elect);
    128+N ended by signal N. Each is explained in docs/cli.md.
    """
    # Data directories, their files and backups hold every key: this user's alone, as
    # etcd keeps its data directory at 0700.
    os.umask(PRIVATE_UMASK)


PRIVATE_UMASK = 0o077


DEFAULT_CLUSTER_DATA = "data"  # where `kvnode cluster up` keeps its nodes, by default


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
        from kvnode.client.tls import client_context

        try:
            return client_context(self.cacert, self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            fail(f"cannot use the TLS files: {exc}", EXIT_CONFIG)


def local_cluster_target(cluster_id: str | None) -> tuple[str, str | None]:
    """Where a command with no --endpoints goes: the cluster that `kvnode cluster up` runs
    in ./data (its control socket says its addresses and id), else the default ports."""
    from kvnode.cluster.control import ask

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

    def run(
        self,
        action: Callable[[Client], Awaitable[T]],
        *,
        keep_trying: bool = False,
        retry_reads: bool = True,
    ) -> T:
        """Run `action(client)`; client errors become one line and their exit code. Retries stop
        after --timeout seconds, or never with `keep_trying` (a watch outlives outages)."""
        from kvnode.client import Client, KvError

        async def runner() -> T:
            endpoint_list = self.endpoints.split(",")
            deadline = float("inf") if keep_trying else self.timeout
            async with Client(
                endpoint_list,
                timeout=min(self.timeout, ATTEMPT_SECONDS),
                token=self.token,
                retry_reads=retry_reads,
                write_deadline=deadline,
                tls=self.tls.context(),
                cluster_id=self.cluster_id,
            ) as client:
                return await action(client)

        try:
            return asyncio.run(runner())
        except KvError as exc:
            fail(str(exc), exit_code_for(exc))
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
    """VALUE as the bytes the shell passed (any bytes, as `os.fsencode` recovers them from
    the arguments), or standard input."""
    return as_bytes(value) if value is not None else sys.stdin.buffer.read()


def as_bytes(argument: str) -> bytes:
    """An argument's bytes exactly as given: Python decodes argv with surrogateescape, so
    bytes that are not UTF-8 come back as they were, not as an encoding error."""
    return os.fsencode(argument)


def utf8_text(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback for keys and prefixes: they are UTF-8 text (values may be any
    bytes), so an argument that is not is a usage error, not a traceback."""
    if value is not None:
        try:
            value.encode()
        except UnicodeEncodeError:
            raise click.BadParameter(
                "must be UTF-8 text (keys are text; values may be any bytes)", param=param
            ) from None
    return value
