"""Side-by-side benchmark: the same workloads against a 3-member etcd and a kvnode cluster,
one after the other on this machine, with the kvnode/etcd ratio of every row.

Both clusters run on 127.0.0.1 with their own ports and temporary data
directories, fsync on, and are stopped (by PID) at the end.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import click

from kvnode.bench.load import BenchSettings, format_table, run_load
from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster, free_ports

ROWS = [
    ("write", 1),
    ("write", 16),
    ("write", 64),
    ("read", 1),
    ("read", 64),
    ("read-stale", 64),
]


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


async def kvnode_ready(local: LocalCluster) -> list[str]:
    async with Client(local.urls, timeout=2) as client:
        leader = await local.wait_for_leader(client)
        await local.wait_until_ready(client)
    # Like for etcd, the first endpoint is the leader; connections spread over all three.
    return [local.urls[leader]] + [u for i, u in enumerate(local.urls) if i != leader]


async def etcd_endpoints(etcd: EtcdCluster) -> list[str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(etcd.client_urls[0] + "/v2/stats/leader") as response:
            if response.status == 200:
                return etcd.client_urls
        # This member is not the leader: find who is.
        for url in etcd.client_urls:
            async with session.get(url + "/v2/stats/self") as response:
                stats = await response.json(content_type=None)
                if stats.get("state") == "StateLeader":
                    return [url] + [u for u in etcd.client_urls if u != url]
    return etcd.client_urls


def ratio(kv: dict[str, Any], etcd: dict[str, Any]) -> str:
    if not etcd["ops_per_s"]:
        return "n/a"
    return f"{kv['ops_per_s'] / etcd['ops_per_s']:.2f}"


@click.command()
@click.option("--duration", default=10.0, show_default=True, help="Seconds per row.")
@click.option("--value-size", default=100, show_default=True)
@click.option("--etcd", "etcd_binary", default="etcd", show_default=True)
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path), default=Path("bench-vs-etcd.json")
)
def main(duration: float, value_size: int, etcd_binary: str, json_path: Path) -> None:
    """Run every workload row against etcd, then kvnode, and print both with ratios."""
    binary = shutil.which(etcd_binary)
    if binary is None:
        raise click.ClickException(
            f"{etcd_binary} not found (scripts/bench-vs-etcd.sh installs it)"
        )
    results: dict[str, list[dict[str, Any]]] = {"etcd": [], "kvnode": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for target in ("etcd", "kvnode"):
            if target == "etcd":
                etcd = EtcdCluster(base, binary)
                stop = etcd.stop
                asyncio.run(etcd.wait_healthy())
                endpoints = asyncio.run(etcd_endpoints(etcd))
            else:
                local = LocalCluster(base / "kvnode")
                local.start_all()
                stop = local.stop_all
                endpoints = asyncio.run(kvnode_ready(local))
            try:
                for workload, connections in ROWS:
                    settings = BenchSettings(
                        endpoints=endpoints,
                        workload=workload,
                        target="etcd-v2" if target == "etcd" else "kvnode",
                        connections=connections,
                        duration=duration,
                        value_size=value_size,
                        progress=False,
                    )
                    row = asyncio.run(run_load(settings))
                    results[target].append(row)
                    click.echo(format_table([row]).splitlines()[1], err=True)
            finally:
                stop()
    click.echo(format_table(results["etcd"] + results["kvnode"]))
    click.echo()
    click.echo(
        f"{'workload':10} {'conns':>5} {'etcd ops/s':>11} {'kvnode ops/s':>13} {'ratio':>6} "
        f"{'etcd p50':>9} {'kv p50':>8} {'etcd p99':>9} {'kv p99':>8}"
    )
    for etcd_row, kv_row in zip(results["etcd"], results["kvnode"], strict=True):
        click.echo(
            f"{kv_row['workload']:10} {kv_row['connections']:>5} {etcd_row['ops_per_s']:>11} "
            f"{kv_row['ops_per_s']:>13} {ratio(kv_row, etcd_row):>6} "
            f"{etcd_row['latency']['p50_ms']:>9} {kv_row['latency']['p50_ms']:>8} "
            f"{etcd_row['latency']['p99_ms']:>9} {kv_row['latency']['p99_ms']:>8}"
        )
    json_path.write_text(json.dumps(results, indent=2))
    click.echo(f"\nresults written to {json_path}")


if __name__ == "__main__":
    main()
