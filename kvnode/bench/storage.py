"""Storage benchmark: applied entries/s and batch latency, WAL recovery time, and how long
a read waits while batches are applied.

Run it with `scripts/bench.sh storage [--json FILE]`. It measures the state
machine alone (no Raft, no HTTP): what the disk and the apply path cost.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

from kvnode import commands
from kvnode.bench.report import latency_summary_ms
from kvnode.raft.batcher import MAX_BATCH_COMMANDS
from kvnode.storage.machine import Entry, StateMachine

VALUE_BYTES = 100
KEY_SPACE = 10_000


def make_entries(count: int, start_index: int, rng: random.Random) -> list[Entry]:
    value = rng.randbytes(VALUE_BYTES)
    return [
        Entry(
            start_index + i,
            1,
            commands.put(
                f"key-{rng.randrange(KEY_SPACE):05d}", value, issued_at_ms=start_index + i
            ),
        )
        for i in range(count)
    ]


def bench_apply(directory: Path, fsync: bool, batch: int, entries: int) -> dict[str, Any]:
    rng = random.Random(batch)
    machine = StateMachine(directory, fsync=fsync)
    workload = make_entries(entries, 1, rng)
    latencies = []
    started = time.perf_counter()
    for offset in range(0, entries, batch):
        t0 = time.perf_counter()
        machine.apply(workload[offset : offset + batch])
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    machine.close()
    return {
        "fsync": "always" if fsync else "never",
        "batch": batch,
        "entries": entries,
        "entries_per_s": round(entries / elapsed),
        "batch_latency": latency_summary_ms(latencies),
    }


def bench_recovery(directory: Path, records: int) -> dict[str, Any]:
    machine = StateMachine(
        directory, fsync=False, checkpoint_entries=10**12, checkpoint_seconds=10**12
    )
    rng = random.Random(7)
    for offset in range(0, records, 10_000):
        machine.apply(make_entries(min(10_000, records - offset), offset + 1, rng))
    wal_bytes = machine.stats().wal_bytes
    machine.close(checkpoint=False)
    started = time.perf_counter()
    recovered = StateMachine(directory)
    elapsed = time.perf_counter() - started
    assert recovered.last_applied == records
    return {"wal_records": records, "wal_bytes": wal_bytes, "recovery_s": round(elapsed, 2)}


def bench_read_wait(directory: Path, seconds: float) -> dict[str, Any]:
    """One thread applies full batches (MAX_BATCH_COMMANDS puts an entry) back to back, as
    the Raft thread does under a write flood; this one reads a key every millisecond, as
    the event loop does for a GET. How long each read waited for the state, and how fast
    the applier went meanwhile (a read that gets in costs the applier a little)."""
    machine = StateMachine(
        directory, fsync=False, checkpoint_entries=10**12, checkpoint_seconds=10**12
    )
    rng = random.Random(11)
    batches = [
        commands.batch([e.command for e in make_entries(MAX_BATCH_COMMANDS, 1, rng)])
        for _ in range(20)
    ]
    stop = threading.Event()
    applied = [0]

    def apply_forever() -> None:
        while not stop.is_set():
            index = applied[0] + 1
            machine.append([Entry(index, 1, batches[index % len(batches)])])
            applied[0] = index

    applier = threading.Thread(target=apply_forever, name="bench-applier")
    applier.start()
    waits = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        machine.read("key-00001")
        waits.append(time.perf_counter() - t0)
        time.sleep(0.001)
    stop.set()
    applier.join()
    machine.close(checkpoint=False)
    return {
        "reads": len(waits),
        "read_wait": latency_summary_ms(waits),
        "writes_per_s": round(applied[0] * MAX_BATCH_COMMANDS / seconds),
    }


@click.command()
@click.option("--entries", default=100_000, show_default=True, help="Entries per batched run.")
@click.option("--recovery-records", default=1_000_000, show_default=True)
@click.option("--read-wait-seconds", default=5.0, show_default=True)
@click.option("--dir", "base", type=click.Path(path_type=Path), help="Where to write (tmp).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write results here.")
def main(
    entries: int,
    recovery_records: int,
    read_wait_seconds: float,
    base: Path | None,
    json_path: Path | None,
) -> None:
    """Apply throughput for batch sizes 1/64/1024 x fsync always/never, recovery time, then
    the wait of a read while full batches are applied."""
    results: dict[str, Any] = {"apply": [], "recovery": None, "read_wait": None}
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        click.echo(
            f"{'fsync':>6} {'batch':>6} {'entries/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'p999 ms':>8}"
        )
        for fsync in (True, False):
            for batch in (1, 64, 1024):
                count = min(entries, 5_000) if batch == 1 and fsync else entries
                row = bench_apply(Path(tmp) / f"{fsync}-{batch}", fsync, batch, count)
                results["apply"].append(row)
                lat = row["batch_latency"]
                click.echo(
                    f"{row['fsync']:>6} {batch:>6} {row['entries_per_s']:>10} "
                    f"{lat['p50_ms']:>8} {lat['p99_ms']:>8} {lat['p99.9_ms']:>8}"
                )
        results["recovery"] = bench_recovery(Path(tmp) / "recovery", recovery_records)
        rec = results["recovery"]
        click.echo(
            f"recovery of {rec['wal_records']} WAL records ({rec['wal_bytes'] / 1e6:.0f} MB): "
            f"{rec['recovery_s']} s"
        )
        results["read_wait"] = bench_read_wait(Path(tmp) / "read-wait", read_wait_seconds)
        wait = results["read_wait"]["read_wait"]
        click.echo(
            f"read wait during back-to-back batches: p50 {wait['p50_ms']} ms, "
            f"p99 {wait['p99_ms']} ms, max {wait['max_ms']} ms "
            f"({results['read_wait']['writes_per_s']} writes/s applied meanwhile)"
        )
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
