"""The coordination commands of the `kvnode` CLI: txn, lease, lock and elect (registered on
`kvnode.cli.common.main` when `kvnode.cli` imports this module)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click
import orjson

from kvnode.cli.common import EXIT_CONFIG, ClientOptions, client_command, echo_json, fail, main
from kvnode.cli.supervise import EXIT_LOCK_LOST, hold_until_stopped, run_holding
from kvnode.client import Client
from kvnode.client.coordination import KEEPALIVE_FRACTION, Lock, election, observe
from kvnode.client.coordination import log as coordination_log
from kvnode.contract import value_text

DEFAULT_GRACE_SECONDS = 3.0


@main.command()
@click.argument("file", type=click.Path(path_type=Path, allow_dash=True), default="-")
@client_command
def txn(file: Path, client: ClientOptions) -> None:
    """Run the transaction in FILE (or stdin): JSON {"compare", "success", "failure"}.

    Prints the reply; exit code 0 whichever branch ran (see "succeeded").

    \b
    Example:
      echo '{"compare":[{"key":"a","target":"value","op":"==","value":"1"}],
             "success":[{"put":{"key":"a","value":"2"}}]}' | kvnode txn
    """
    raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        fail(f"the transaction is not JSON: {exc}", EXIT_CONFIG)
    if not isinstance(body, dict):
        fail("the transaction must be a JSON object", EXIT_CONFIG)
    reply = client.run(
        lambda c: c.txn(body.get("compare", []), body.get("success", []), body.get("failure", []))
    )
    echo_json(reply)


@main.group()
def lease() -> None:
    """Leases: keys attached to a lease are deleted when it expires or is revoked."""


@lease.command("grant")
@click.argument("ttl", type=click.FloatRange(0.001))
@client_command
def lease_grant(ttl: float, client: ClientOptions) -> None:
    """Grant a lease of TTL seconds and print its id."""
    granted = client.run(lambda c: c.lease_grant(ttl))
    if client.as_json:
        echo_json(granted)
    else:
        click.echo(granted["id"])


@lease.command("keepalive")
@click.argument("lease_id", type=click.IntRange(1))
@click.option("--once", is_flag=True, help="Renew once and exit (default: until Ctrl-C).")
@client_command
def lease_keepalive(lease_id: int, once: bool, client: ClientOptions) -> None:
    """Keep lease LEASE_ID alive, renewing it every third of its ttl."""

    async def keep(c: Client) -> None:
        while True:
            renewed = await c.lease_keepalive(lease_id)
            click.echo(f"lease {lease_id} renewed; expires at {renewed['expire_at']}")
            if once:
                return
            await asyncio.sleep(renewed["ttl"] / KEEPALIVE_FRACTION)

    client.run_until_stopped(keep, keep_trying=False)


@lease.command("revoke")
@click.argument("lease_id", type=click.IntRange(1))
@client_command
def lease_revoke(lease_id: int, client: ClientOptions) -> None:
    """Revoke lease LEASE_ID, deleting every key attached to it."""
    client.run(lambda c: c.lease_revoke(lease_id))
    click.echo(f"lease {lease_id} revoked")


@lease.command("list")
@client_command
def lease_list(client: ClientOptions) -> None:
    """List the leases."""
    leases = client.run(lambda c: c.leases())
    if client.as_json:
        echo_json(leases)
        return
    for item in leases:
        click.echo(f"{item['id']} ttl={item['ttl']:g} expire_at={item['expire_at']}")


def grace_option(command: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--grace",
        type=click.FloatRange(0, min_open=True),
        default=None,
        help="Seconds between losing the lock and the lease's earliest expiry, to stop in"
        " [default: 3, or a third of --ttl if less].",
    )(command)


def lock_timing(ttl: float, grace: float | None) -> float:
    """The grace period to use, or a usage error when it leaves no time to renew."""
    chosen = min(DEFAULT_GRACE_SECONDS, ttl / KEEPALIVE_FRACTION) if grace is None else grace
    if chosen > ttl / 2:
        fail(
            f"--grace ({chosen:g} s) must be at most half of --ttl ({ttl:g} s): the lease"
            " must be renewable before the lock is given up",
            EXIT_CONFIG,
        )
    return chosen


def report_lock_progress() -> None:
    """The lock's own log lines (queued, held, starting over) on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("kvnode: %(message)s"))
    progress = logging.getLogger(coordination_log.name)
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False


def report_to_stderr(message: str) -> None:
    click.echo(f"kvnode: {message}", err=True)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--ttl", default=10.0, show_default=True, help="Seconds the lock outlives a crash.")
@grace_option
@click.option(
    "--verbose", is_flag=True, help="Say on stderr when queued (with the key) and when held."
)
@client_command
def lock(
    name: str,
    command: tuple[str, ...],
    ttl: float,
    grace: float | None,
    verbose: bool,
    client: ClientOptions,
) -> None:
    """Run COMMAND while holding lock NAME; exit with COMMAND's exit code.

    The fencing token (larger for every later holder) is in KVNODE_FENCING_TOKEN.
    SIGINT, SIGTERM and SIGHUP are passed on to COMMAND, and the lock is released as
    soon as COMMAND ends. If the lock is lost while COMMAND runs (its lease could not
    be renewed), COMMAND gets SIGTERM, then SIGKILL after --grace seconds, so it has
    ended before the lease can expire; kvnode lock then exits 125.

    \b
    Example:
      kvnode lock nightly-job -- ./backup.sh --full
    """
    grace = lock_timing(ttl, grace)
    if verbose:
        report_lock_progress()

    def fencing_env(held: Lock) -> dict[str, str]:
        return {"KVNODE_FENCING_TOKEN": str(held.fencing_token)}

    async def hold(c: Client) -> int:
        held = c.lock(name, ttl=ttl, grace=grace)
        return await run_holding(held, command, fencing_env, report_to_stderr)

    try:
        code = client.run(hold, keep_trying=True)
    except FileNotFoundError as exc:
        fail(f"cannot run {command[0]!r}: {exc.strerror}", 127)
    if code == EXIT_LOCK_LOST:
        fail(f"lock {name} was lost while the command ran; the command was stopped", code)
    sys.exit(code)


@main.command()
@click.argument("name")
@click.argument("value", required=False)
@click.option("--observe", "watch_only", is_flag=True, help="Print each new leader; never run.")
@click.option("--ttl", default=10.0, show_default=True, help="Seconds leadership outlives a crash.")
@grace_option
@client_command
def elect(
    name: str,
    value: str | None,
    watch_only: bool,
    ttl: float,
    grace: float | None,
    client: ClientOptions,
) -> None:
    """Campaign in election NAME as VALUE; print when elected and lead until stopped.

    SIGINT, SIGTERM or SIGHUP resigns (exit 0). Leadership that can no longer be
    vouched for (its lease could not be renewed) ends with exit code 125, --grace
    seconds before the lease can expire.

    \b
    Examples:
      kvnode elect scheduler host-a
      kvnode elect --observe scheduler
    """
    if watch_only:
        run_observer(name, client)
        return
    if value is None:
        fail("give a VALUE to campaign with, or --observe", EXIT_CONFIG)
    grace = lock_timing(ttl, grace)

    def announce(leadership: Lock) -> None:
        click.echo(f"elected: {name} is led by {value} (revision {leadership.fencing_token})")

    async def campaign(c: Client) -> int:
        leadership = election(c, name, value.encode(), ttl, grace)
        return await hold_until_stopped(leadership, announce)

    code = client.run(campaign, keep_trying=True)
    if code == EXIT_LOCK_LOST:
        fail(f"leadership of {name} lost: its lease could not be kept alive", code)
    sys.exit(code)


def run_observer(name: str, client: ClientOptions) -> None:
    async def follow(c: Client) -> None:
        async for leader in observe(c, name):
            if client.as_json:
                echo_json(leader.to_json(), one_line=True)
            else:
                value = value_text(leader.value or b"")
                click.echo(f"{value} (revision {leader.create_revision})")

    client.run_until_stopped(follow)
