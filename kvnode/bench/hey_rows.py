"""One row of a comparison: a cluster driven by `hey`, its CPU per operation, medians.

What bench-vs-etcd (compare.py) and the Raft floor (raft_floor.py) share: a `System` is
a cluster under test with its leader's URL and its processes by role; `measure` runs one
`hey` row against it and reads each process's CPU time from /proc; `median_row` folds
the rounds of a row into medians.
"""

from __future__ import annotations

import csv
import io
import os
import resource
import statistics
import subprocess
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvnode.bench.report import latency_summary_ms
from kvnode.thread_names import HTTP_THREAD, RAFT_THREAD, SYNC_THREAD

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
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

    def seed(self, value: bytes) -> None:
        """Write the key the GET rows read, with the value the PUT rows write: a GET row
        measured alone then reads what it reads after them (etcd answers a key never
        written with a 404, which is not an ok reply)."""
        method, url, body, content_type = self.request("put", value)
        request = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=30):
            pass


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


def by_role(pids: list[int], leader: int) -> dict[str, int]:
    followers = [pid for i, pid in enumerate(pids) if i != leader]
    return {"leader": pids[leader], **{f"follower{n + 1}": pid for n, pid in enumerate(followers)}}


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
