"""A chaos run: a cluster, the workload, the nemesis, then the verdict.

After the faults stop, everything is healed, each key is read once more
(linearizably) and the history is checked: per-key linearizability, no lost
acknowledged write, identical replicas (equal state digest and applied index
on every node), and watchers that saw exactly the committed changes
(`watch_checker`).
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kvnode.client import Client, KvError

from .checker import check_history, lost_writes
from .history import OK, Op
from .leaders import LeaderLog
from .lock_chaos import LockChaos
from .nemesis import Nemesis
from .netns import Topology
from .supervisor import LocalCluster
from .watch_checker import check_watchers
from .watchers import END_MARKER, PREFIX, Watchers
from .workload import KEYS, TTL_KEYS, Workload

CLUSTER_SETTINGS = {"append_entries_period": 0.02, "request_timeout": 3.0}
HEAL_TIMEOUT = 60.0
FINAL_READER = -1  # the process id of the reads made after healing


@dataclass
class ChaosSettings:
    duration: float = 30.0
    nemeses: list[str] = field(default_factory=lambda: ["kill", "pause"])
    seed: int = 1
    clients: int = 10
    rate: float = 20.0
    base_dir: Path | None = None
    extra_settings: dict[str, Any] = field(default_factory=dict)
    history_path: Path | None = None  # where to save the raw history, for re-checking
    watchers: int = 2  # clients watching the whole key space through the faults
    report_dir: Path | None = None  # where to write the run as a page (report_page.py)
    locks: int = 0  # `kvnode lock` contenders under client faults (lock_chaos.py)


async def final_reads(cluster: LocalCluster, history: list[Op]) -> None:
    """Read every key linearizably once the cluster is healed; the reads join the history
    (as process FINAL_READER), which is where `final_values` finds them."""
    next_id = max((op.id for op in history), default=0)
    async with Client(cluster.urls, timeout=5, token=cluster.token) as client:
        for key in KEYS + TTL_KEYS:
            deadline = time.monotonic() + HEAL_TIMEOUT
            while True:
                started = time.monotonic()
                try:
                    found = await client.get(key)
                    break
                except KvError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            value = found.value.decode() if found is not None else None
            next_id += 1
            history.append(
                Op(
                    next_id,
                    FINAL_READER,
                    "get",
                    key,
                    value=value,
                    invoke=started,
                    complete=time.monotonic(),
                    outcome=OK,
                )
            )


async def end_watches(cluster: LocalCluster) -> None:
    """Write the end marker once healed: each watcher stops when it has seen it."""
    async with Client(
        cluster.urls, timeout=5, token=cluster.token, write_deadline=HEAL_TIMEOUT
    ) as c:
        await c.put(END_MARKER, b"end")


def final_values(history: list[Op]) -> dict[str, str | None]:
    """Each key's value as read after healing (the final reads recorded in the history)."""
    return {op.key: op.value for op in history if op.process == FINAL_READER}


def availability(history: list[Op], started: float, ended: float) -> dict[str, float]:
    """Share of seconds with at least one successful operation, and the longest gap."""
    done = sorted(op.complete for op in history if op.outcome == OK and op.process != FINAL_READER)
    seconds = max(1, math.ceil(ended - started))
    busy = {int(t - started) for t in done if started <= t <= ended}
    gaps = [b - a for a, b in zip([started, *done], [*done, ended], strict=True)]
    return {
        "seconds_with_success": round(len(busy) / seconds, 3),
        "longest_unavailable_s": round(max(gaps, default=0.0), 2),
    }


async def converged_digests(cluster: LocalCluster) -> dict[str, Any]:
    async with Client(cluster.urls, timeout=2, token=cluster.token) as client:
        deadline = time.monotonic() + HEAL_TIMEOUT
        while True:
            statuses = await cluster.statuses(client, digest=True)
            views = {(s["applied_index"], s["digest"]) for s in statuses.values()}
            if len(statuses) == cluster.size and len(views) == 1:
                index, digest = views.pop()
                return {"equal": True, "applied_index": index, "digest": digest}
            if time.monotonic() > deadline:
                return {
                    "equal": False,
                    "nodes": {i: (s["applied_index"], s["digest"]) for i, s in statuses.items()},
                }
            await asyncio.sleep(0.2)


async def run_chaos(settings: ChaosSettings) -> dict[str, Any]:
    topology = Topology(3) if "partition" in settings.nemeses else None
    with tempfile.TemporaryDirectory(dir=settings.base_dir) as tmp:
        if topology is not None:
            topology.setup()
        cluster = LocalCluster(
            Path(tmp),
            hosts=topology.addresses if topology else None,
            http_ports=[8001] * 3 if topology else None,
            raft_ports=[4321] * 3 if topology else None,
            launch_prefix=[topology.prefix(i) for i in range(3)] if topology else None,
            settings={**CLUSTER_SETTINGS, **settings.extra_settings},
        )
        try:
            cluster.start_all()
            async with Client(cluster.urls, timeout=2, token=cluster.token) as client:
                await cluster.wait_for_leader(client)
                await cluster.wait_until_ready(client)
                _keys, index = await client.list_with_index(PREFIX, limit=1)
            watchers = Watchers(cluster.urls, settings.watchers, cluster.token)
            watchers.start(index + 1)
            workload = Workload(
                cluster.urls, settings.clients, settings.rate, settings.seed, cluster.token
            )
            nemesis = Nemesis(cluster, settings.nemeses, settings.seed, topology)
            locks = LockChaos(cluster, Path(tmp) / "locks", settings.locks, settings.seed)
            leaders = LeaderLog(cluster)
            started = time.monotonic()
            await asyncio.gather(
                workload.run(settings.duration),
                nemesis.run(settings.duration),
                locks.run(settings.duration),  # its last turns may outlast the faults
                leaders.run(settings.duration),
            )
            ended = time.monotonic()
            nemesis.heal_all()
            await final_reads(cluster, workload.history)
            await end_watches(cluster)
            await watchers.finish(HEAL_TIMEOUT)
            digests = await converged_digests(cluster)
            if settings.history_path is not None:
                settings.history_path.write_bytes(
                    orjson.dumps([op.to_json() for op in workload.history])
                )
            report = build_report(workload.history, nemesis, digests, started, ended)
            report["watch"] = check_watchers(watchers.logs, workload.history)
            report["valid"] = report["valid"] and report["watch"]["valid"]
            if settings.locks:
                report["locks"] = locks.report()
                report["valid"] = report["valid"] and report["locks"]["valid"]
            report.update(started=started, ended=ended, leader_changes=leaders.changes)
            if settings.report_dir is not None:
                from .report_page import write_chaos_report  # matplotlib: only when asked

                write_chaos_report(
                    settings.report_dir, report, workload.history, format_report(report)
                )
            return report
        finally:
            locks.stop()
            cluster.stop_all()
            if topology is not None:
                topology.teardown()


def build_report(
    history: list[Op],
    nemesis: Nemesis,
    digests: dict[str, Any],
    started: float,
    ended: float,
) -> dict[str, Any]:
    judgement = judge(history)
    client_ops = [op for op in history if op.process != FINAL_READER]
    outcomes = Counter(op.outcome for op in client_ops)
    return {
        **judgement,
        "valid": judgement["valid"] and digests["equal"],
        "operations": dict(outcomes),
        "operations_by_kind": dict(Counter(op.kind for op in client_ops)),
        "faults": dict(nemesis.counts),
        "fault_log": nemesis.log,
        "availability": availability(history, started, ended),
        "replicas": digests,
    }


def judge(history: list[Op]) -> dict[str, Any]:
    """The history's verdict: per-key linearizability and no lost acknowledged writes. It
    needs nothing but the history, so a saved one can be judged again (`--check`)."""
    verdicts = check_history(history)
    violations = [v for v in verdicts if not v.linearizable]
    lost = lost_writes(history, final_values(history))
    return {
        "valid": not violations and not lost,
        "keys_checked": len(verdicts),
        "violations": [
            {
                "key": v.key,
                "reason": v.reason,
                "minimal_history": [op.describe() for op in v.minimal],
            }
            for v in violations
        ],
        "lost_writes": [op.describe() for op in lost],
    }


def format_report(report: dict[str, Any]) -> str:
    ops = report["operations"]
    by_outcome = ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
    lines = [
        f"operations: {sum(ops.values())} ({by_outcome})",
        f"faults: {', '.join(f'{k} x{v}' for k, v in sorted(report['faults'].items())) or 'none'}",
        f"availability: {report['availability']['seconds_with_success']:.0%} of seconds had a "
        f"success; longest outage {report['availability']['longest_unavailable_s']} s",
        f"replicas identical: {report['replicas']['equal']}",
    ]
    watch = report.get("watch")
    if watch is not None:
        lines.append(
            f"watchers: {watch['watchers']} saw {watch['events']} events via nodes"
            f" {watch['nodes_used']}; consistent with the log: {watch['valid']}"
        )
        lines.extend(f"  watch: {problem}" for problem in watch["problems"])
    locks = report.get("locks")
    if locks is not None:
        faults = ", ".join(f"{k} x{v}" for k, v in sorted(locks["faults"].items())) or "none"
        lines.append(
            f"locks: {locks['runs']} runs of kvnode lock by {locks['contenders']} contenders,"
            f" {locks['sections']} critical sections; client faults: {faults};"
            f" overlaps or tokens out of order: {len(locks['problems'])}"
        )
        lines.extend(f"  lock: {problem}" for problem in locks["problems"])
    return "\n".join([*lines, format_judgement(report)])


def format_judgement(report: dict[str, Any]) -> str:
    lines = [
        f"lost acknowledged writes: {len(report['lost_writes'])}",
        f"linearizability violations: {len(report['violations'])} of {report['keys_checked']} keys",
    ]
    for violation in report["violations"]:
        lines.append(f"  {violation['key']}: {violation['reason']}")
        lines.extend(f"    {line}" for line in violation["minimal_history"])
    lines.extend(f"  lost: {line}" for line in report["lost_writes"])
    lines.append("VERDICT: " + ("valid" if report["valid"] else "INVALID"))
    return "\n".join(lines)
