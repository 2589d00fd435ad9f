"""Storage benchmark: applied entries/s and batch latency, and WAL recovery time.

Run it with `scripts/bench.sh storage [--json FILE]`. It measures the state
machine alone (no Raft, no HTTP): what the disk and the apply path cost.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from kvnode import commands
from kvnode.bench.report import latency_summary_ms
from kvnode.storage import Entry, StateMachine

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
    wal_bytes = machine.stats()["wal_bytes"]
    machine.close(checkpoint=False)
    started = time.perf_counter()
    recovered = StateMachine(directory)
    elapsed = time.perf_counter() - started
    assert recovered.last_applied == records
    return {"wal_records": records, "wal_bytes": wal_bytes, "recovery_s": round(elapsed, 2)}


@click.command()
@click.option("--entries", default=100_000, show_default=True, help="Entries per batched run.")
@click.option("--recovery-records", default=1_000_000, show_default=True)
@click.option("--dir", "base", type=click.Path(path_type=Path), help="Where to write (tmp).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write results here.")
def main(entries: int, recovery_records: int, base: Path | None, json_path: Path | None) -> None:
    """Apply throughput for batch sizes 1/64/1024 x fsync always/never, then recovery time."""
    results: dict[str, Any] = {"apply": [], "recovery": None}
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
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
