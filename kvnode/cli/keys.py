"""The key commands: put, get, delete, cas, list and watch."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from kvnode.cli.common import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    ClientOptions,
    as_bytes,
    client_command,
    echo_json,
    echo_write,
    fail,
    main,
    read_value,
    utf8_text,
)
from kvnode.contract import CONSISTENCY_MODES, DEFAULT_LIST_LIMIT, value_fields, value_text

if TYPE_CHECKING:
    from kvnode.client import Client, KeyItem


@main.command()
@click.argument("key", callback=utf8_text)
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
@click.argument("key", callback=utf8_text)
@click.option(
    "--consistency",
    type=click.Choice(CONSISTENCY_MODES),
    default="linearizable",
    show_default=True,
)
@click.option(
    "--newline/--no-newline",
    default=None,
    help="End the value with a newline, or not. Default: after text, not after other bytes.",
)
@client_command
def get(key: str, consistency: str, newline: bool | None, client: ClientOptions) -> None:
    """Print the value of KEY (exit code 4 if it does not exist): text with a newline,
    any other bytes exactly as stored (with --json: `value_base64`).

    \b
    Examples:
      kvnode get greeting
      kvnode get greeting --consistency stale --json
      kvnode get photos/1 > photo.jpg
    """
    found = client.run(lambda c: c.get(key, consistency=consistency))
    if found is None:
        fail(f"key {key!r} not found", EXIT_NOT_FOUND)
    if client.as_json:
        echo_json(
            {
                "key": key,
                **value_fields(found.value),
                "revision": found.revision,
                "create_revision": found.create_revision,
                "expire_at": found.expire_at,
            }
        )
    else:
        if newline is None:
            newline = "value" in value_fields(found.value)  # text
        sys.stdout.buffer.write(found.value + (b"\n" if newline else b""))


@main.command()
@click.argument("key", required=False, callback=utf8_text)
@click.option("--prev-value", help="Only if the current value equals this.")
@click.option("--prev-revision", type=int, help="Only if the current revision equals this.")
@click.option(
    "--prefix", callback=utf8_text, help="Delete every key under this prefix instead of one KEY."
)
@click.option(
    "--end", callback=utf8_text, help="With --prefix: only keys before this one (exclusive)."
)
@client_command
def delete(
    key: str | None,
    prev_value: str | None,
    prev_revision: int | None,
    prefix: str | None,
    end: str | None,
    client: ClientOptions,
) -> None:
    """Delete KEY, or every key under --prefix (at one revision).

    \b
    Examples:
      kvnode delete greeting
      kvnode delete lock --prev-value me
      kvnode delete --prefix session/
      kvnode delete --prefix logs/ --end logs/2026-
    """
    if (key is None) == (prefix is None):
        fail("give a KEY or --prefix (one of them)", EXIT_CONFIG)
    if key is None:
        delete_range(prefix or "", end or "", prev_value, prev_revision, client)
        return
    if end is not None:
        fail("--end goes with --prefix", EXIT_CONFIG)
    expected = as_bytes(prev_value) if prev_value is not None else None
    revision = client.run(lambda c: c.delete(key, prev_value=expected, prev_revision=prev_revision))
    if client.as_json:
        echo_json({"deleted": True, "revision": revision})
    else:
        click.echo(f"deleted {key} at revision {revision}")


def delete_range(
    prefix: str, end: str, prev_value: str | None, prev_revision: int | None, client: ClientOptions
) -> None:
    if prev_value is not None or prev_revision is not None:
        fail("--prev-value and --prev-revision take a KEY, not --prefix", EXIT_CONFIG)
    if not prefix and not end:
        fail("an empty --prefix without --end would delete every key", EXIT_CONFIG)
    deleted, revision = client.run(lambda c: c.delete_prefix(prefix, end=end))
    if client.as_json:
        echo_json({"deleted": deleted, "revision": revision})
    else:
        click.echo(f"deleted {deleted} keys under {prefix!r} at revision {revision}")


@main.command()
@click.argument("key", callback=utf8_text)
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
    expected = as_bytes(prev_value) if prev_value is not None else None
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
@click.option("--prefix", default="", callback=utf8_text, help="Only keys starting with this.")
@click.option("--end", default="", callback=utf8_text, help="Only keys before this (exclusive).")
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="At most this many keys; the number left out is said on stderr. Default: every key.",
)
@click.option("--values", is_flag=True, help="Include values.")
@click.option("--keys-only", is_flag=True, help="Print only the keys, one per line.")
@click.option("--count", "count_only", is_flag=True, help="Print only how many keys there are.")
@client_command
def list_keys(
    prefix: str,
    end: str,
    limit: int | None,
    values: bool,
    keys_only: bool,
    count_only: bool,
    client: ClientOptions,
) -> None:
    """List keys in order, every one of them (a page at a time), or count them.

    \b
    Examples:
      kvnode list --prefix session/
      kvnode list --prefix logs/2026- --end logs/2026-07 --keys-only
      kvnode list --prefix session/ --count
      kvnode list --values --json
    """
    if count_only:
        counted = client.run(lambda c: c.count(prefix, end=end))
        if client.as_json:
            echo_json({"count": counted})
        else:
            click.echo(counted)
        return
    shown: list[KeyItem] = []

    async def every_page(c: Client) -> int:
        """Print (or collect, for --json) page after page; the keys left out by --limit."""
        after = ""
        while limit is None or len(shown) < limit:
            want = (
                DEFAULT_LIST_LIMIT if limit is None else min(limit - len(shown), DEFAULT_LIST_LIMIT)
            )
            page = await c.list_page(prefix, limit=want, values=values, end=end, start_after=after)
            shown.extend(page.items)
            if not client.as_json:
                for item in page.items:
                    click.echo(listed_line(item, values, keys_only))
            if page.next_start_after is None:
                return 0
            after = page.next_start_after
        return await c.count(prefix, end=end) - len(shown)

    left_out = client.run(every_page)
    if client.as_json:
        echo_json([item.to_json() for item in shown])
    if left_out > 0:
        click.echo(f"kvnode: {left_out} more keys not shown (--limit {limit})", err=True)


def listed_line(item: KeyItem, values: bool, keys_only: bool) -> str:
    if keys_only:
        return item.key
    line = f"{item.key}\trev {item.revision}"
    if values and item.value is not None:
        line += "\t" + value_text(item.value)
    return line


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
