"""The operations commands of the `kvnode` CLI: backup, restore, export and import
(registered on `kvnode.cli.common.main` when `kvnode.cli` imports this module)."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click
import orjson

from kvnode.cli.common import EXIT_CONFIG, EXIT_STORAGE, ClientOptions, client_command, fail, main
from kvnode.client import Client
from kvnode.config import ConfigError, load_config
from kvnode.storage.errors import StorageError
from kvnode.storage.fileformat import TMP_SUFFIX, fsync_dir

CHUNK_BYTES = 1 << 20
EXPORT_PAGE = 1000


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--endpoint", help="The node to back up from (default: the first of --endpoints).")
@client_command
def backup(file: Path, endpoint: str | None, client: ClientOptions) -> None:
    """Save a consistent snapshot of the whole state to FILE, from a live node.

    Writes go on meanwhile. The file is checked (SHA-256 and CRC) before it is put in
    place. Restore it with `kvnode restore`.

    \b
    Example:
      kvnode backup kvnode.snap --endpoint 127.0.0.1:8001
    """
    from kvnode.storage.snapshot import read_snapshot

    partial = file.with_name(file.name + TMP_SUFFIX)

    async def download(c: Client) -> tuple[int, str, int]:
        async with c.stream("/snapshot", endpoint=endpoint) as response:
            size = int(response.headers.get("Content-Length", 0))
            digest = hashlib.sha256()
            with (
                open(partial, "wb") as out,
                click.progressbar(length=size, label="backup", file=sys.stderr) as bar,
            ):
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != response.headers["X-KV-Snapshot-SHA256"]:
                raise click.ClickException("the download does not match its SHA-256")
            return int(response.headers["X-KV-Index"]), digest.hexdigest(), size

    try:
        index, sha256, size = client.run(download)
        image = read_snapshot(partial)
    except (StorageError, click.ClickException) as exc:
        partial.unlink(missing_ok=True)
        fail(f"backup failed: {exc}", 1)
    os.replace(partial, file)
    fsync_dir(file.resolve().parent)
    keys = len(list(image.items))
    click.echo(f"backup of revision {index}: {keys} keys, {size} bytes, sha256 {sha256} -> {file}")


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The config of the node to create (its data_dir must be empty or absent).",
)
def restore(file: Path, config_path: Path) -> None:
    """Create a node's data directory from a backup FILE.

    Restore the same file for every node of the new cluster, then start them.

    \b
    Example:
      for n in 1 2 3; do kvnode restore kvnode.snap --config node$n.toml; done
    """
    from kvnode.service.restore import restore_node

    try:
        config = load_config(config_path)
        image = restore_node(config, file)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StorageError as exc:
        fail(f"{file}: not a usable backup: {exc}", EXIT_STORAGE)
    click.echo(f"restored revision {image.index} into {config.data_dir}")


async def all_keys(c: Client, prefix: str) -> AsyncIterator[dict[str, Any]]:
    """Every live key under `prefix` with its value, page by page (linearizable reads)."""
    start_after = ""
    while True:
        params = {"prefix": prefix, "values": "true", "limit": str(EXPORT_PAGE)}
        if start_after:
            params["start_after"] = start_after
        _status, body, headers = await c.request("GET", "/kv/", params=params, idempotent=True)
        items: list[dict[str, Any]] = orjson.loads(body)
        for item in items:
            yield item
        if headers.get("X-KV-More") != "true" or not items:
            return
        start_after = items[-1]["key"]


@main.command("export")
@click.option("--prefix", default="", help="Only the keys under this prefix.")
@client_command
def export_keys(prefix: str, client: ClientOptions) -> None:
    """Print every key as a JSON line: {"key", "value" | "value_base64", "expire_at"}.

    For moving data between clusters or versions (`kvnode import` reads it back).
    Leases are not exported: a leased key's lease is for its owner to grant again.
    """

    async def dump(c: Client) -> int:
        count = 0
        async for item in all_keys(c, prefix):
            line: dict[str, Any] = {
                k: item[k] for k in ("key", "value", "value_base64") if k in item
            }
            line["expire_at"] = item.get("expire_at")
            click.echo(orjson.dumps(line).decode())
            count += 1
        return count

    count = client.run(dump)
    click.echo(f"exported {count} keys", err=True)


@main.command("import")
@click.argument("file", type=click.File("rb"), default="-")
@client_command
def import_keys(file: Any, client: ClientOptions) -> None:
    """Write every key of a `kvnode export` FILE (or stdin) into the cluster.

    A key with a deadline keeps it (as the time left); one whose deadline has passed is
    skipped.
    """
    import base64

    async def load(c: Client) -> tuple[int, int]:
        written = skipped = 0
        for number, raw in enumerate(file, start=1):
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
                value = (
                    item["value"].encode()
                    if "value" in item
                    else base64.b64decode(item["value_base64"], validate=True)
                )
                key, expire_at = item["key"], item.get("expire_at")
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise click.ClickException(f"line {number}: not an exported key: {exc}") from exc
            ttl = None
            if expire_at:
                ttl = (expire_at - time.time() * 1000) / 1000
                if ttl <= 0:
                    skipped += 1
                    continue
            await c.put(key, value, ttl=ttl)
            written += 1
        return written, skipped

    try:
        written, skipped = client.run(load)
    except click.ClickException as exc:
        fail(exc.message, EXIT_CONFIG)
    click.echo(f"imported {written} keys ({skipped} already expired)")
