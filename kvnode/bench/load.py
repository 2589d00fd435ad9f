"""HTTP load generator: kvnode (or etcd's v2 API, for comparison) under many keep-alive
connections; reports ops/s and latency percentiles, never hides an error.

Workloads: write (PUT), read (linearizable GET), read-stale, mixed (half of
each), cas (read the revision, then compare-and-swap on it).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from kvnode.bench.report import latency_summary_ms

PROGRESS_SECONDS = 1.0


RequestSpec = tuple[str, str, dict[str, str], Any]  # method, url, params, body


@dataclass
class BenchSettings:
    endpoints: list[str]
    workload: str = "write"
    target: str = "kvnode"
    connections: int = 16
    duration: float = 10.0
    requests: int | None = None
    value_size: int = 100
    keys: int = 1000
    warmup: float = 1.0
    seed: int = 1
    progress: bool = True
    report_dir: Path | None = None  # where to draw the run as a page (bench/load_page.py)


@dataclass
class BenchStats:
    latencies: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)  # monotonic, beside latencies
    outcomes: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0

    def summary(self, settings: BenchSettings) -> dict[str, Any]:
        elapsed = max(self.finished - self.started, 1e-9)
        ok = self.outcomes.get("ok", 0)
        return {
            "target": settings.target,
            "workload": settings.workload,
            "connections": settings.connections,
            "value_size": settings.value_size,
            "duration_s": round(elapsed, 2),
            "ops": sum(self.outcomes.values()),
            "ok": ok,
            "errors": {k: v for k, v in self.outcomes.items() if k != "ok"},
            "ops_per_s": round(ok / elapsed, 1),
            "latency": latency_summary_ms(self.latencies),
        }


class Target:
    """How one request of each kind is spelled for a given server."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def put(self, base: str, key: str, value: bytes) -> RequestSpec:
        if self.kind == "etcd-v2":
            return "PUT", f"{base}/v2/keys/{key}", {}, {"value": value.decode()}
        return "PUT", f"{base}/kv/{key}", {}, value

    def get(self, base: str, key: str, stale: bool) -> RequestSpec:
        if self.kind == "etcd-v2":
            return "GET", f"{base}/v2/keys/{key}", ({} if stale else {"quorum": "true"}), None
        return "GET", f"{base}/kv/{key}", ({"consistency": "stale"} if stale else {}), None

    def cas(self, base: str, key: str, value: bytes, revision: str) -> RequestSpec:
        if self.kind == "etcd-v2":
            return (
                "PUT",
                f"{base}/v2/keys/{key}",
                {"prevIndex": revision},
                {"value": value.decode()},
            )
        return "PUT", f"{base}/kv/{key}", {"prev_revision": revision}, value

    def revision(self, headers: Any, body: bytes) -> str | None:
        if self.kind == "etcd-v2":
            return _etcd_modified_index(body)
        revision: str | None = headers.get("X-KV-Revision")
        return revision


def _etcd_modified_index(body: bytes) -> str | None:
    import orjson

    try:
        return str(orjson.loads(body)["node"]["modifiedIndex"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _classify(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 404:
        return "not_found"
    if status == 412:
        return "compare_failed"
    return f"http_{status}"


async def _send(session: aiohttp.ClientSession, spec: RequestSpec) -> tuple[int, Any, bytes]:
    method, url, params, data = spec
    async with session.request(method, url, params=params, data=data) as response:
        body = await response.read()
        return response.status, response.headers, body


async def _worker(
    worker_id: int,
    session: aiohttp.ClientSession,
    settings: BenchSettings,
    stats: BenchStats,
    stop_at: list[float],
    budget: list[int],
) -> None:
    rng = random.Random(settings.seed * 1000 + worker_id)
    base = settings.endpoints[worker_id % len(settings.endpoints)].rstrip("/")
    if "://" not in base:
        base = "http://" + base
    target = Target(settings.target)
    value = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(settings.value_size))
    while time.monotonic() < stop_at[0]:
        if settings.requests is not None:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        key = f"bench-{rng.randrange(settings.keys):06d}"
        kind = settings.workload
        if kind == "mixed":
            kind = "write" if rng.random() < 0.5 else "read"
        started = time.perf_counter()
        try:
            if kind == "write":
                status, _h, _b = await _send(session, target.put(base, key, value))
            elif kind in ("read", "read-stale"):
                status, _h, _b = await _send(session, target.get(base, key, kind == "read-stale"))
                status = 200 if status == 404 else status  # an absent key is a valid answer
            else:
                status, headers, body = await _send(session, target.get(base, key, False))
                revision = target.revision(headers, body) if status == 200 else None
                if revision is None:
                    status, _h, _b = await _send(session, target.put(base, key, value))
                else:
                    status, _h, _b = await _send(session, target.cas(base, key, value, revision))
            outcome = _classify(status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        elapsed = time.perf_counter() - started
        if stats.started and time.monotonic() < stop_at[0]:
            stats.outcomes[outcome] += 1
            if outcome in ("ok", "compare_failed"):
                stats.latencies.append(elapsed)
                stats.answered_at.append(time.monotonic())


async def run_load(settings: BenchSettings) -> dict[str, Any]:
    """Warm up, then measure for `duration` seconds (or until `requests` are done)."""
    stats = BenchStats()
    connector = aiohttp.TCPConnector(limit=settings.connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    now = time.monotonic()
    stop_at = [now + settings.warmup + (settings.duration if settings.requests is None else 1e9)]
    budget = [settings.requests if settings.requests is not None else 0]
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        workers = [
            asyncio.create_task(_worker(i, session, settings, stats, stop_at, budget))
            for i in range(settings.connections)
        ]
        await asyncio.sleep(settings.warmup)
        stats.started = time.monotonic()
        cpu_started = time.process_time()
        if settings.requests is not None:
            budget[0] = settings.requests
        progress = asyncio.create_task(_report_progress(stats, settings))
        await asyncio.gather(*workers)
        stats.finished = time.monotonic()
        cpu_used = time.process_time() - cpu_started
        progress.cancel()
    if settings.progress:
        sys.stderr.write("\n")
    summary = stats.summary(settings)
    # This client's own CPU, in cores: near 1 it is the bottleneck, not the server.
    summary["client_core_share"] = round(cpu_used / max(stats.finished - stats.started, 1e-9), 2)
    if settings.report_dir is not None:
        from kvnode.bench.load_page import write_bench_report  # matplotlib: only when asked

        answered = [at - stats.started for at in stats.answered_at]
        write_bench_report(settings.report_dir, summary, stats.latencies, answered)
    return summary


async def _report_progress(stats: BenchStats, settings: BenchSettings) -> None:
    if not settings.progress:
        return
    last_count, last_time = 0, time.monotonic()
    while True:
        await asyncio.sleep(PROGRESS_SECONDS)
        count, now = stats.outcomes.get("ok", 0), time.monotonic()
        rate = (count - last_count) / (now - last_time)
        errors = sum(v for k, v in stats.outcomes.items() if k != "ok")
        sys.stderr.write(
            f"\r{settings.target} {settings.workload} x{settings.connections}: "
            f"{count} ok, {errors} errors, {rate:8.0f} ops/s   "
        )
        sys.stderr.flush()
        last_count, last_time = count, now


def format_table(results: list[dict[str, Any]]) -> str:
    header = (
        f"{'target':8} {'workload':10} {'conns':>5} {'ops/s':>9} {'ok':>8} {'errors':>7} "
        f"{'p50':>8} {'p90':>8} {'p99':>8} {'p999':>8} {'max':>8}  (ms)"
    )
    lines = [header]
    for r in results:
        lat = r["latency"]
        lines.append(
            f"{r['target']:8} {r['workload']:10} {r['connections']:>5} {r['ops_per_s']:>9} "
            f"{r['ok']:>8} {sum(r['errors'].values()):>7} {lat['p50_ms']:>8} {lat['p90_ms']:>8} "
            f"{lat['p99_ms']:>8} {lat['p99.9_ms']:>8} {lat['max_ms']:>8}"
        )
    return "\n".join(lines)
