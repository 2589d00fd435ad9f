"""Tick stalls under a large state: do heartbeats go on while nodes checkpoint and snapshot?

A 3-node cluster is restored from a generated backup of `--keys` keys (100-byte
values), so it starts large without hours of writes. Then a steady write load
runs for `--duration` seconds with settings that make every node write Raft
snapshots (of the whole state) and state-machine checkpoints during the run.
Each node reports the longest gap between two ticks of its Raft thread and how
many gaps exceeded 50 ms; the terms before and after tell whether any election
happened. Run it with `scripts/bench.sh stall [--keys N] [--json FILE]`.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import click

from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster
from kvnode.config import load_config
from kvnode.service.restore import restore_node
from kvnode.storage.fileformat import KIND_SNAPSHOT, atomic_write
from kvnode.storage.image import StateImage, encode_parts
from kvnode.storage.record import KeyRecord

VALUE_BYTES = 100
WRITE_VALUE_BYTES = 8192  # large writes grow the WAL until a checkpoint of the big state is due
SETTINGS = {
    "append_entries_period": 0.02,
    "snapshot_entries": 2000,  # a Raft snapshot of the whole state every 2000 writes
    "checkpoint_entries": 1000,
    "request_timeout": 10.0,
}


def generate_backup(path: Path, keys: int) -> None:
    value = b"v" * VALUE_BYTES
    items = ((f"bench/{i:08d}", KeyRecord(value, i + 1, i + 1, 0)) for i in range(keys))
    data, _crc = encode_parts(KIND_SNAPSHOT, StateImage(keys, 1, 0, items, [], [], b""), keys)
    atomic_write(path, data, durable=False)


async def write_load(urls: list[str], rate: float, seconds: float) -> dict[str, int]:
    counts = {"ok": 0, "failed": 0}
    value = b"w" * WRITE_VALUE_BYTES
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            url = f"{urls[i % len(urls)]}/kv/load/{i % 5000}"
            try:
                async with session.put(url, data=value) as response:
                    counts["ok" if response.status < 300 else "failed"] += 1
            except aiohttp.ClientError:
                counts["failed"] += 1

        tasks, start = [], time.monotonic()
        for i in range(int(rate * seconds)):
            tasks.append(asyncio.ensure_future(one(i)))
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return counts


async def measure(cluster: LocalCluster, rate: float, seconds: float) -> dict[str, Any]:
    async with Client(cluster.urls, timeout=30) as client:
        await cluster.wait_for_leader(client, timeout=300)
        await cluster.wait_until_ready(client, timeout=300)
        # No digests: hashing a million keys would be a stall of its own.
        before = await cluster.statuses(client)
        click.echo(f"writing {rate:g}/s for {seconds:g} s", err=True)
        load = await write_load(cluster.urls, rate, seconds)
        after = await cluster.statuses(client)
    nodes = {}
    for i, status in after.items():
        nodes[status["node_id"]] = {
            "longest_tick_gap_ms": longest_gap_during(before[i], status),
            "tick_stalls": status["tick_stalls"] - before[i]["tick_stalls"],
            "longest_fork_ms": status["longest_fork_ms"],
            "snapshots_written": status["snapshots_written"] - before[i]["snapshots_written"],
            "snapshots_installed": status["snapshots_installed"] - before[i]["snapshots_installed"],
            "checkpoint_bytes": status["checkpoint_bytes"],
            "keys": status["keys"],
        }
    terms = sorted({s["term"] for s in before.values()} | {s["term"] for s in after.values()})
    return {"writes": load, "terms_seen": terms, "elections": len(terms) - 1, "nodes": nodes}


def longest_gap_during(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The longest tick gap of the run, from two looks at `stall_windows`: windows that are
    new, and the window the run began in if its longest gap grew meanwhile (loading the
    state at startup is a stall too, often in that same 10 s window, and not the run's)."""
    earlier = {start: gap for start, gap in before["stall_windows"]}
    during = [
        gap for start, gap in after["stall_windows"] if start not in earlier or gap > earlier[start]
    ]
    return max(during, default=0.0)


@click.command()
@click.option("--keys", default=1_000_000, show_default=True, help="Keys in the state.")
@click.option("--duration", default=60.0, show_default=True, help="Seconds of write load.")
@click.option("--rate", default=200.0, show_default=True, help="Writes per second.")
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="Also run with fork_snapshots = false (snapshots in the Raft thread), for contrast.",
)
@click.option("--dir", "base", type=click.Path(path_type=Path), help="Where to run (tmp).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write results here.")
def main(
    keys: int,
    duration: float,
    rate: float,
    compare: bool,
    base: Path | None,
    json_path: Path | None,
) -> None:
    runs = {}
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        root = Path(tmp)
        backup = root / "large.snap"
        started = time.monotonic()
        generate_backup(backup, keys)
        click.echo(f"generated {keys} keys in {time.monotonic() - started:.1f} s", err=True)
        for fork in (True, False) if compare else (True,):
            cluster = LocalCluster(
                root / f"cluster-fork-{fork}", settings={**SETTINGS, "fork_snapshots": fork}
            )
            for node in cluster.nodes:
                restore_node(load_config(node.config_path), backup)
            cluster.start_all()
            try:
                runs[f"fork_snapshots={str(fork).lower()}"] = asyncio.run(
                    measure(cluster, rate, duration)
                )
            finally:
                cluster.stop_all()
    result = {"keys": keys, "duration_s": duration, "rate": rate, "runs": runs}
    click.echo(json.dumps(result, indent=2))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
