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
import csv
import io
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import click

from kvnode.bench import floor
from kvnode.bench.report import latency_summary_ms
from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster, free_ports
from kvnode.thread_names import HTTP_THREAD, RAFT_THREAD, SYNC_THREAD

ROWS = [
    ("put", 1),
    ("put", 16),
    ("put", 64),
    ("get", 1),
    ("get", 64),
    ("stale-get", 64),
]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
README_BEGIN = "<!-- bench-vs-etcd:begin -->"
README_END = "<!-- bench-vs-etcd:end -->"
BENCH_KEY = "bench"
LEADER_THREADS = (HTTP_THREAD, RAFT_THREAD, SYNC_THREAD)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time so far of each named thread of a process (kvnode names its threads:
    thread_names.py), from /proc/PID/task/TID/{comm,stat}; a thread that ended is gone."""
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            totals[name] = totals.get(name, 0.0) + stat_cpu_seconds(task / "stat")
        except FileNotFoundError:
            continue
    return totals


@dataclass
class System:
    """One cluster under test: where to send each workload, and its processes by role."""

    name: str
    leader_url: str
    pids: dict[str, int]  # "leader", "follower1", "follower2"

    def request(self, workload: str, value: bytes) -> tuple[str, str, bytes, str]:
        """(method, url, body, content type) of one request of `workload`."""
        if self.name == "etcd":
            url = f"{self.leader_url}/v2/keys/{BENCH_KEY}"
            if workload == "put":
                return "PUT", url, b"value=" + value, "application/x-www-form-urlencoded"
            return "GET", url + ("?quorum=true" if workload == "get" else ""), b"", ""
        url = f"{self.leader_url}/kv/{BENCH_KEY}"
        if workload == "put":
            return "PUT", url, value, "application/octet-stream"
        return "GET", url + ("?consistency=stale" if workload == "stale-get" else ""), b"", ""


def run_hey(
    method: str,
    url: str,
    body: bytes,
    content_type: str,
    connections: int,
    seconds: float,
    workdir: Path,
) -> dict[str, Any]:
    """One hey run: successful ops/s, latency percentiles, and hey's own CPU share."""
    command = ["hey", "-z", f"{seconds:g}s", "-c", str(connections), "-m", method, "-o", "csv"]
    if body:
        body_path = workdir / "body"
        body_path.write_bytes(body)
        command += ["-D", str(body_path), "-T", content_type]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = list(csv.DictReader(io.StringIO(output)))
    ok = [float(r["response-time"]) for r in rows if r["status-code"].startswith("2")]
    generator_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "ok": len(ok),
        "errors": len(rows) - len(ok),
        "ok_per_s": round(len(ok) / seconds, 1),
        "latency": latency_summary_ms(ok),
        "generator_core_share": round(generator_cpu / seconds, 2),
    }


def measure(
    system: System,
    workload: str,
    connections: int,
    seconds: float,
    value: bytes,
    workdir: Path,
) -> dict[str, Any]:
    """One row for one system, with each server process's CPU µs per successful op."""
    method, url, body, content_type = system.request(workload, value)
    before = {role: cpu_seconds(pid) for role, pid in system.pids.items()}
    threads_before = thread_cpu_seconds(system.pids["leader"])
    result = run_hey(method, url, body, content_type, connections, seconds, workdir)
    ops = max(result["ok"], 1)
    result["cpu_us_per_op"] = {
        role: round((cpu_seconds(pid) - before[role]) * 1e6 / ops, 1)
        for role, pid in system.pids.items()
    }
    if system.name == "kvnode":  # where the leader's time goes: HTTP, Raft, fsync thread
        threads_after = thread_cpu_seconds(system.pids["leader"])
        result["leader_thread_us_per_op"] = {
            name: round((threads_after[name] - threads_before.get(name, 0.0)) * 1e6 / ops, 1)
            for name in LEADER_THREADS
            if name in threads_after
        }
    return {"system": system.name, "workload": workload, "connections": connections, **result}


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


def by_role(pids: list[int], leader: int) -> dict[str, int]:
    followers = [pid for i, pid in enumerate(pids) if i != leader]
    return {"leader": pids[leader], **{f"follower{n + 1}": pid for n, pid in enumerate(followers)}}


async def kvnode_system(local: LocalCluster) -> System:
    async with Client(local.urls, timeout=2) as client:
        leader = await local.wait_for_leader(client)
        await local.wait_until_ready(client)
        await client.put(BENCH_KEY, b"v")
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


def median(values: Iterable[float]) -> float:
    return round(float(statistics.median(values)), 2)


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each measured number over the rounds of one row."""
    first = rows[0]
    return {
        "system": first["system"],
        "workload": first["workload"],
        "connections": first["connections"],
        "rounds": len(rows),
        "ok_per_s": median(r["ok_per_s"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "latency": {key: median(r["latency"][key] for r in rows) for key in first["latency"]},
        "generator_core_share": median(r["generator_core_share"] for r in rows),
        "cpu_us_per_op": {
            role: median(r["cpu_us_per_op"][role] for r in rows) for role in first["cpu_us_per_op"]
        },
        "leader_thread_us_per_op": {
            name: median(r["leader_thread_us_per_op"][name] for r in rows)
            for name in first.get("leader_thread_us_per_op", {})
        },
    }


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


def format_floor(medians: dict[str, list[dict[str, Any]]]) -> str:
    """The floor beside etcd: what a server that only parses (aiohttp's C parser) and
    writes a prebuilt reply gets on each row, so a ratio kvnode cannot pass is visible."""
    lines = [
        "floor: one process, aiohttp's C parser, a prebuilt reply (kvnode.bench.floor)",
        f"{'workload':10} {'conns':>5} {'etcd ok/s':>10} {'floor ok/s':>11} {'ratio':>6} "
        f"{'floor cpu us/op':>16} {'kvnode ok/s':>12} {'kvnode leader cpu us/op':>24}",
    ]
    for etcd, kv, bare in zip(medians["etcd"], medians["kvnode"], medians["floor"], strict=True):
        ratio = bare["ok_per_s"] / etcd["ok_per_s"] if etcd["ok_per_s"] else float("nan")
        lines.append(
            f"{bare['workload']:10} {bare['connections']:>5} {etcd['ok_per_s']:>10} "
            f"{bare['ok_per_s']:>11} {ratio:>6.2f} {bare['cpu_us_per_op']['leader']:>16} "
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
def main(
    duration: float,
    rounds: int,
    value_size: int,
    etcd_binary: str,
    json_path: Path,
    only_rows: tuple[str, ...],
    readme: Path | None,
    with_floor: bool,
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
    floor_server: subprocess.Popen[bytes] | None = None
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
            for round_number in range(rounds):
                order = systems if round_number % 2 == 0 else systems[::-1]
                for workload, connections in rows:
                    for system in order:
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
    medians = {
        name: [median_row(rows) for rows in by_row.values()] for name, by_row in runs.items()
    }
    table = format_comparison(medians)
    description = machine_description()
    click.echo(f"{description}\n{table}")
    if with_floor:
        click.echo(f"\n{format_floor(medians)}")
    json_path.write_text(json.dumps({"machine": description, "medians": medians}, indent=2))
    click.echo(f"\nresults written to {json_path}")
    if readme is not None:
        update_readme(readme, table, description, duration, rounds)
        click.echo(f"table written into {readme}")


if __name__ == "__main__":
    main()
