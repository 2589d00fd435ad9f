"""The operations commands of the `kvnode` CLI: backup, restore, export and import
(registered on `kvnode.cli.common.main` when `kvnode.cli` imports this module)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson

from kvnode.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_STORAGE,
    ClientOptions,
    client_command,
    fail,
    main,
)
from kvnode.client import Client
from kvnode.config import ConfigError, load_config
from kvnode.contract import value_fields
from kvnode.storage.errors import StorageError
from kvnode.storage.fileformat import TMP_SUFFIX, fsync_dir

CHUNK_BYTES = 1 << 20


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--endpoint", help="The node to back up from (default: the first of --endpoints).")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option(
    "--inspect", is_flag=True, help="Check an existing backup FILE and describe it; no node."
)
@client_command
def backup(
    file: Path, endpoint: str | None, force: bool, inspect: bool, client: ClientOptions
) -> None:
    """Save a consistent snapshot of the whole state to FILE, from a live node.

    Writes go on meanwhile. The file is checked (SHA-256 and CRC) before it is put in
    place; an existing FILE is kept unless --force. Restore it with `kvnode restore`.

    \b
    Examples:
      kvnode backup kvnode.snap --endpoint 127.0.0.1:8001
      kvnode backup --inspect kvnode.snap
    """
    from kvnode.storage.snapshot import read_snapshot

    if inspect:
        describe_backup(file)
        return
    if file.exists() and not force:
        fail(f"{file} exists; give --force to replace it", EXIT_CONFIG)
    partial = file.with_name(file.name + TMP_SUFFIX)

    # SIGTERM unwinds like Ctrl-C, so that the partial file goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    done = False
    try:
        index, sha256, size = client.run(
            lambda c: download_snapshot(c, partial, endpoint, label="backup")
        )
        image = read_snapshot(partial)
        done = True
    except (StorageError, click.ClickException) as exc:
        fail(f"backup failed: {exc}", EXIT_FAILED)
    finally:
        if not done:  # failed, Ctrl-C or SIGTERM: no partial file left behind
            partial.unlink(missing_ok=True)
    os.replace(partial, file)
    fsync_dir(file.resolve().parent)
    keys = len(list(image.items))
    click.echo(f"backup of revision {index}: {keys} keys, {size} bytes, sha256 {sha256} -> {file}")


async def download_snapshot(
    c: Client, path: Path, endpoint: str | None, *, label: str
) -> tuple[int, str, int]:
    """`GET /snapshot` into `path`, fsynced and checked against its SHA-256 (a progress
    bar on a terminal); returns its store revision, SHA-256 and size."""
    async with c.stream("/snapshot", endpoint=endpoint) as response:
        size = int(response.headers.get("Content-Length", 0))
        digest = hashlib.sha256()
        with (
            open(path, "wb") as out,
            click.progressbar(length=size, label=label, file=sys.stderr) as bar,
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


def describe_backup(file: Path) -> None:
    """`backup --inspect`: verify FILE (every checksum) and say what it holds."""
    from kvnode.storage.snapshot import read_snapshot

    try:
        image = read_snapshot(file)
    except StorageError as exc:
        fail(f"{file}: not a usable backup: {exc}", EXIT_STORAGE)
    data = file.read_bytes()
    click.echo(
        f"{file}: checksums ok; revision {image.revision}, log index {image.index}"
        f" (term {image.term}), {len(list(image.items))} keys,"
        f" {len(list(image.leases))} leases, cluster {image.cluster_id or 'unnamed'},"
        f" {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"
    )


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
    click.echo(
        f"restored revision {image.revision} (log index {image.index}) into {config.data_dir}"
    )


@main.command("export")
@click.option("--prefix", default="", help="Only the keys under this prefix.")
@click.option("--endpoint", help="The node to export from (default: the first of --endpoints).")
@client_command
def export_keys(prefix: str, endpoint: str | None, client: ClientOptions) -> None:
    """Print the keys, all at one revision, as JSON lines: first
    {"kvnode_export": 1, "revision"}, then {"key", "value" | "value_base64", "expire_at"}
    per key.

    For moving data between clusters or versions (`kvnode import` reads it back). The
    keys come from one snapshot of the node (GET /snapshot), so the export is one point
    in time however long it takes. Leases are not exported: a leased key's lease is for
    its owner to grant again.
    """
    from kvnode.storage.snapshot import read_snapshot

    with tempfile.TemporaryDirectory(prefix="kvnode-export-") as scratch:
        snapshot = Path(scratch) / "export.snap"
        try:
            revision, _sha256, _size = client.run(
                lambda c: download_snapshot(c, snapshot, endpoint, label="export")
            )
            image = read_snapshot(snapshot)
        except (StorageError, click.ClickException) as exc:
            fail(f"export failed: {exc}", EXIT_FAILED)
    now_ms = time.time() * 1000
    click.echo(orjson.dumps({EXPORT_HEADER: EXPORT_FORMAT, "revision": revision}).decode())
    count = 0
    for key, record in image.items:
        if not key.startswith(prefix) or (record.expire_at_ms and record.expire_at_ms <= now_ms):
            continue
        line = {"key": key, **value_fields(record.value), "expire_at": record.expire_at_ms or None}
        click.echo(orjson.dumps(line).decode())
        count += 1
    click.echo(f"exported {count} keys at revision {revision}", err=True)


@main.command("import")
@click.argument("file", type=click.File("rb"), default="-")
@client_command
def import_keys(file: Any, client: ClientOptions) -> None:
    """Write every key of a `kvnode export` FILE (or stdin) into the cluster.

    The whole file is checked before anything is written: one bad line (named by its
    number) writes nothing. Keys then go in transactions of up to IMPORT_BATCH_KEYS, each
    all or nothing; if one fails, the keys written before it are reported. A key with a
    deadline keeps it (as the time left); one whose deadline has passed is skipped.
    """
    head = file.peek(len(SNAPSHOT_MAGIC))[: len(SNAPSHOT_MAGIC)] if hasattr(file, "peek") else b""
    if head == SNAPSHOT_MAGIC:
        fail(f"{file.name} is a backup, not an export: use `kvnode restore`", EXIT_CONFIG)
    try:
        keys = [key for key in read_export(file) if key is not None]
    except ValueError as exc:
        fail(f"nothing imported: {exc}", EXIT_CONFIG)
    now_ms = time.time() * 1000
    live = [key.as_put(now_ms) for key in keys if key.expire_at is None or key.expire_at > now_ms]
    batches = import_batches(live)
    written = 0

    async def load(c: Client) -> None:
        nonlocal written
        with click.progressbar(length=len(live), label="import", file=sys.stderr) as bar:
            for batch in batches:
                await c.txn(success=[{"put": put} for put in batch])
                written += len(batch)
                bar.update(len(batch))

    try:
        client.run(load)
    finally:
        if written < len(live):
            click.echo(f"imported {written} of {len(live)} keys before the failure", err=True)
    click.echo(f"imported {written} keys ({len(keys) - len(live)} already expired)")


IMPORT_BATCH_KEYS = 128  # a transaction's most operations (max_txn_ops' default)
IMPORT_BATCH_BYTES = 256 * 1024  # well under max_value_bytes, which bounds a txn's values
SNAPSHOT_MAGIC = b"KVN\0"
EXPORT_HEADER, EXPORT_FORMAT = "kvnode_export", 1  # the first line: {EXPORT_HEADER: 1, "revision"}
EXPORT_FIELDS = frozenset({"key", "value", "value_base64", "expire_at"})


@dataclass(frozen=True)
class ExportedKey:
    """One line of `kvnode export`, checked."""

    key: str
    value: dict[str, str]  # {"value": text} or {"value_base64": b64}, as exported
    size: int
    expire_at: int | None

    def as_put(self, now_ms: float) -> dict[str, Any]:
        """The transaction put that writes it back, with the time it has left."""
        put: dict[str, Any] = {"key": self.key, **self.value}
        if self.expire_at is not None:
            put["ttl"] = (self.expire_at - now_ms) / 1000
        return put


def read_export(lines: Any) -> Iterator[ExportedKey | None]:
    """Every line of an export file, checked strictly (None for a blank line and for the
    header line `kvnode export` writes first); a bad one raises ValueError naming its
    number."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            yield None
            continue
        try:
            item = orjson.loads(raw)
            if number == 1 and isinstance(item, dict) and EXPORT_HEADER in item:
                check_header(item)
                yield None
                continue
            yield exported_key(item)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"line {number}: not an exported key: {exc}") from None


def check_header(item: dict[str, Any]) -> None:
    if item.get(EXPORT_HEADER) != EXPORT_FORMAT or set(item) != {EXPORT_HEADER, "revision"}:
        raise ValueError(f"an export header this kvnode does not read: {item}")


def exported_key(item: Any) -> ExportedKey:
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    unknown = set(item) - EXPORT_FIELDS
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    key, expire_at = item.get("key"), item.get("expire_at")
    if not isinstance(key, str) or not key:
        raise ValueError("'key' must be a non-empty string")
    if expire_at is not None and (not isinstance(expire_at, int) or isinstance(expire_at, bool)):
        raise ValueError("'expire_at' must be an integer (ms) or null")
    given = [field for field in ("value", "value_base64") if field in item]
    if len(given) != 1:
        raise ValueError("give exactly one of 'value' and 'value_base64'")
    (field,) = given
    if not isinstance(item[field], str):
        raise ValueError(f"{field!r} must be a string")
    if field == "value":
        size = len(item[field].encode())
    else:
        try:
            size = len(base64.b64decode(item[field], validate=True))
        except binascii.Error as exc:
            raise ValueError(f"'value_base64' is not base64: {exc}") from None
    return ExportedKey(key, {field: item[field]}, size, expire_at)


def import_batches(puts: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Transactions of at most IMPORT_BATCH_KEYS puts and about IMPORT_BATCH_BYTES of
    values (a larger value goes alone)."""
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for put in puts:
        length = len(put.get("value", put.get("value_base64", "")))
        if (
            not batches
            or len(batches[-1]) >= IMPORT_BATCH_KEYS
            or size + length > IMPORT_BATCH_BYTES
        ):
            batches.append([])
            size = 0
        batches[-1].append(put)
        size += length
    return batches
