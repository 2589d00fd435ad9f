"""kvnode against etcd on this machine, driven by a native load generator (hey).

A Python client saturates a 2-core machine before a Go server does, so it would
flatten etcd's numbers and report a parity that is not there. Here every row is
driven by `hey` (Go), both 3-node clusters run side by side on 127.0.0.1 (fsync
on, temporary data directories, stopped by PID at the end), rounds interleave
the two systems (kvnode, etcd, then etcd, kvnode, ...), and each cell is the
median over rounds. Beside each row: the CPU microseconds per successful
operation of every server process (from /proc/PID/stat), and the share of a
core the generator itself used, so the bottleneck is visible.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import click

from kvnode.bench import floor, raft_floor
from kvnode.bench.hey_rows import (
    LEADER_THREADS,
    System,
    by_role,
    measure,
    median_row,
)
from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster, free_ports

ROWS = [
    ("put", 1),
    ("put", 16),
    ("put", 64),
    ("get", 1),
    ("get", 64),
    ("stale-get", 64),
]
README_BEGIN = "<!-- bench-vs-etcd:begin -->"
README_END = "<!-- bench-vs-etcd:end -->"


class EtcdCluster:
    def __init__(self, base: Path, binary: str) -> None:
        ports = free_ports(6)
        self.client_urls = [f"http://127.0.0.1:{p}" for p in ports[:3]]
        peer_urls = [f"http://127.0.0.1:{p}" for p in ports[3:]]
        initial = ",".join(f"e{i}={url}" for i, url in enumerate(peer_urls))
        self.processes: list[subprocess.Popen[bytes]] = []
        for i in range(3):
            log = open(base / f"etcd{i}.log", "wb")  # noqa: SIM115 - owned by the child
            self.processes.append(
                subprocess.Popen(
                    [
                        binary,
                        "--name",
                        f"e{i}",
                        "--data-dir",
                        str(base / f"etcd{i}"),
                        "--listen-client-urls",
                        self.client_urls[i],
                        "--advertise-client-urls",
                        self.client_urls[i],
                        "--listen-peer-urls",
                        peer_urls[i],
                        "--initial-advertise-peer-urls",
                        peer_urls[i],
                        "--initial-cluster",
                        initial,
                        "--initial-cluster-state",
                        "new",
                        "--enable-v2=true",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()

    async def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.put(
                        self.client_urls[0] + "/v2/keys/probe", data={"value": "1"}
                    ) as response:
                        if response.status < 300:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError("etcd did not become healthy")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


async def kvnode_system(local: LocalCluster) -> System:
    async with Client(local.urls, timeout=2) as client:
        leader = await local.wait_for_leader(client)
        await local.wait_until_ready(client)
    pids = [node.process.pid for node in local.nodes if node.process is not None]
    return System("kvnode", local.urls[leader], by_role(pids, leader))


async def etcd_system(etcd: EtcdCluster) -> System:
    async with aiohttp.ClientSession() as session:
        for index, url in enumerate(etcd.client_urls):
            async with session.get(url + "/v2/stats/self") as response:
                stats = await response.json(content_type=None)
            if stats.get("state") == "StateLeader":
                pids = [process.pid for process in etcd.processes]
                return System("etcd", url, by_role(pids, index))
    raise TimeoutError("etcd has no leader")


def format_comparison(medians: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        f"{'workload':10} {'conns':>5} {'etcd ok/s':>10} {'kvnode ok/s':>12} {'ratio':>6} "
        f"{'etcd p50':>9} {'kv p50':>7} {'etcd p99':>9} {'kv p99':>7} {'kv p999':>8}"
        "  cpu us/op etcd L/F/F | kvnode L/F/F   generator core etcd|kv"
        f"   kv leader {'/'.join(LEADER_THREADS)}"
    ]
    for etcd, kv in zip(medians["etcd"], medians["kvnode"], strict=True):
        ratio = kv["ok_per_s"] / etcd["ok_per_s"] if etcd["ok_per_s"] else float("nan")

        def cpu(row: dict[str, Any]) -> str:
            return "/".join(f"{v:g}" for v in row["cpu_us_per_op"].values())

        lines.append(
            f"{kv['workload']:10} {kv['connections']:>5} {etcd['ok_per_s']:>10} "
            f"{kv['ok_per_s']:>12} {ratio:>6.2f} {etcd['latency']['p50_ms']:>9} "
            f"{kv['latency']['p50_ms']:>7} {etcd['latency']['p99_ms']:>9} "
            f"{kv['latency']['p99_ms']:>7} {kv['latency']['p99.9_ms']:>8}  "
            f"{cpu(etcd):>20} | {cpu(kv):<16} {etcd['generator_core_share']:>5}|"
            f"{kv['generator_core_share']:<4}   "
            + "/".join(f"{v:g}" for v in kv["leader_thread_us_per_op"].values())
        )
    return "\n".join(lines)


FLOOR_TITLES = {
    "floor": "floor: one process, aiohttp's C parser, a prebuilt reply (kvnode.bench.floor)",
    "raft-floor": "raft floor: three bare PySyncObj nodes, no fsync, one thread each, an entry"
    " per loop turn, the floor's front (kvnode.bench.raft_floor)",
}


def format_floor(medians: dict[str, list[dict[str, Any]]], name: str) -> str:
    """A floor beside etcd: what a server that does less than kvnode can (FLOOR_TITLES)
    gets on each row it was measured on, so a ratio kvnode cannot pass is visible."""
    lines = [
        FLOOR_TITLES[name],
        f"{'workload':10} {'conns':>5} {'etcd ok/s':>10} {'floor ok/s':>11} {'ratio':>6} "
        f"{'etcd p50':>9} {'floor p50':>10} {'floor cpu us/op':>16} {'kvnode ok/s':>12} "
        f"{'kvnode leader cpu us/op':>24}",
    ]
    etcd_rows = {(r["workload"], r["connections"]): r for r in medians["etcd"]}
    kv_rows = {(r["workload"], r["connections"]): r for r in medians["kvnode"]}
    for bare in medians[name]:
        etcd, kv = (
            etcd_rows[bare["workload"], bare["connections"]],
            kv_rows[bare["workload"], bare["connections"]],
        )
        ratio = bare["ok_per_s"] / etcd["ok_per_s"] if etcd["ok_per_s"] else float("nan")
        lines.append(
            f"{bare['workload']:10} {bare['connections']:>5} {etcd['ok_per_s']:>10} "
            f"{bare['ok_per_s']:>11} {ratio:>6.2f} {etcd['latency']['p50_ms']:>9} "
            f"{bare['latency']['p50_ms']:>10} {bare['cpu_us_per_op']['leader']:>16} "
            f"{kv['ok_per_s']:>12} {kv['cpu_us_per_op']['leader']:>24}"
        )
    return "\n".join(lines)


def machine_description() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    etcd = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout
    etcd_version = re.search(r"etcd Version: (\S+)", etcd)
    return (
        f"{date.today().isoformat()}, {os.cpu_count()} cores ({cpu}), "
        f"Linux {platform.release()}, etcd {etcd_version.group(1) if etcd_version else '?'}"
        " (v2 API), hey from Debian"
    )


def update_readme(readme: Path, table: str, description: str, seconds: float, rounds: int) -> None:
    """Replace the block between the markers of the benchmarks page (docs/benchmarks.md)
    with this run's table."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise click.ClickException(f"{readme} has no {README_BEGIN} ... {README_END} block")
    block = (
        f"{README_BEGIN}\nMeasured {description}; {rounds} interleaved rounds of "
        f"{seconds:g} s per row, medians; 100-byte values.\n\n```\n{table}\n```\n{README_END}"
    )
    head, rest = text.split(README_BEGIN, 1)
    readme.write_text(head + block + rest.split(README_END, 1)[1])


@click.command()
@click.option("--duration", default=5.0, show_default=True, help="Seconds per row and round.")
@click.option("--rounds", default=2, show_default=True, help="Interleaved rounds (medians).")
@click.option("--value-size", default=100, show_default=True)
@click.option("--etcd", "etcd_binary", default="etcd", show_default=True)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), default=Path("bench-vs-etcd.json")
)
@click.option(
    "--row",
    "only_rows",
    multiple=True,
    type=click.Choice([f"{workload}:{connections}" for workload, connections in ROWS]),
    help="Measure only this row (repeatable); all rows by default.",
)
@click.option(
    "--readme",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Write the table into this file's bench-vs-etcd block (docs/benchmarks.md).",
)
@click.option(
    "--floor",
    "with_floor",
    is_flag=True,
    help="Also measure the HTTP floor (a bare protocol on aiohttp's parser, prebuilt reply)"
    " in the same interleaved rounds, and print it beside etcd.",
)
@click.option(
    "--raft-floor",
    "with_raft_floor",
    is_flag=True,
    help="Also measure three bare PySyncObj nodes behind the HTTP floor's front (no fsync)"
    " on the PUT rows, in the same interleaved rounds, and print them beside etcd.",
)
def main(
    duration: float,
    rounds: int,
    value_size: int,
    etcd_binary: str,
    json_path: Path,
    only_rows: tuple[str, ...],
    readme: Path | None,
    with_floor: bool,
    with_raft_floor: bool,
) -> None:
    """Every workload row against etcd and kvnode with hey, interleaved, medians printed."""
    if only_rows and readme is not None:
        raise click.UsageError("--readme writes the whole table; it cannot take --row")
    rows = [row for row in ROWS if not only_rows or f"{row[0]}:{row[1]}" in only_rows]
    binary = shutil.which(etcd_binary)
    if binary is None or shutil.which("hey") is None:
        raise click.ClickException(
            "etcd and hey are needed (scripts/bench-vs-etcd.sh installs them)"
        )
    value = b"v" * value_size
    runs: dict[str, dict[tuple[str, int], list[dict[str, Any]]]] = {"etcd": {}, "kvnode": {}}
    if with_floor:
        runs["floor"] = {}
    if with_raft_floor:
        runs["raft-floor"] = {}
    floor_server: subprocess.Popen[bytes] | None = None
    raft_floor_cluster: raft_floor.RaftFloorCluster | None = None
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        etcd = EtcdCluster(base, binary)
        local = LocalCluster(base / "kvnode")
        try:
            local.start_all()
            asyncio.run(etcd.wait_healthy())
            systems = [asyncio.run(kvnode_system(local)), asyncio.run(etcd_system(etcd))]
            if with_floor:
                port = floor.free_port()
                floor_server = floor.start("protocol", port, base)
                floor.wait_until_listening(port, floor_server)
                floor_url = f"http://127.0.0.1:{port}"
                systems.append(System("floor", floor_url, {"leader": floor_server.pid}))
            if with_raft_floor:
                raft_floor_cluster = raft_floor.RaftFloorCluster("loop", True, base)
                systems.append(raft_floor_cluster.system("raft-floor"))
            for system in systems:
                system.seed(value)
            for round_number in range(rounds):
                order = systems if round_number % 2 == 0 else systems[::-1]
                for workload, connections in rows:
                    for system in order:
                        if system.name == "raft-floor" and workload != "put":
                            continue  # its reads are a dict's, neither linearizable nor kvnode's
                        row = measure(system, workload, connections, duration, value, base)
                        runs[system.name].setdefault((workload, connections), []).append(row)
                        click.echo(
                            f"round {round_number + 1} {system.name:6} {workload:9} "
                            f"c={connections:<3} {row['ok_per_s']:>9} ok/s "
                            f"p50 {row['latency']['p50_ms']} ms",
                            err=True,
                        )
        finally:
            local.stop_all()
            etcd.stop()
            if floor_server is not None:
                floor_server.terminate()
                floor_server.wait(30)
            if raft_floor_cluster is not None:
                raft_floor_cluster.stop()
    medians = {
        name: [median_row(rows) for rows in by_row.values()] for name, by_row in runs.items()
    }
    table = format_comparison(medians)
    description = machine_description()
    click.echo(f"{description}\n{table}")
    for name in ("floor", "raft-floor"):
        if name in medians:
            click.echo(f"\n{format_floor(medians, name)}")
    json_path.write_text(json.dumps({"machine": description, "medians": medians}, indent=2))
    click.echo(f"\nresults written to {json_path}")
    if readme is not None:
        update_readme(readme, table, description, duration, rounds)
        click.echo(f"table written into {readme}")


if __name__ == "__main__":
    main()
