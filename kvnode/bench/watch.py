"""The watch benchmark: many stream watchers on one node while a writer changes the keys
they watch at a steady rate; reports how long a change takes to reach its watchers.

Latency is measured two ways, both on this process's clock: from the moment the
PUT was sent (an upper bound of commit -> watcher) and from the moment its
acknowledgement arrived (the delivery lag a client sees after a write). The
node's CPU comes from /proc, and this process's own CPU is reported too, so a
saturated client is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from kvnode.bench.hey_rows import cpu_seconds
from kvnode.bench.report import latency_summary_ms

KEY_PREFIX = "watchbench/"
CONNECT_SECONDS = 60.0


@dataclass
class WatchBenchSettings:
    endpoint: str  # the node the watchers are on, and the writer writes to
    watchers: int = 1000
    rate: float = 500.0  # writes per second
    keys: int = 1000  # watcher i watches key i % keys
    duration: float = 10.0
    value_size: int = 100
    seed: int = 1


@dataclass
class Deliveries:
    sent_at: dict[str, float] = field(default_factory=dict)
    acked_at: dict[str, float] = field(default_factory=dict)
    from_send: list[float] = field(default_factory=list)
    from_ack: list[float] = field(default_factory=list)
    write_latency: list[float] = field(default_factory=list)
    write_errors: int = 0
    measuring: bool = False

    def received(self, value: str, now: float) -> None:
        if not self.measuring or value not in self.sent_at:
            return
        self.from_send.append(now - self.sent_at[value])
        if value in self.acked_at:
            self.from_ack.append(max(0.0, now - self.acked_at[value]))


async def watcher(
    session: aiohttp.ClientSession, url: str, key: str, deliveries: Deliveries, ready: Any
) -> None:
    async with session.get(f"{url}/kv/{key}", params={"watch": "stream"}) as response:
        response.raise_for_status()
        ready()
        async for line in response.content:
            event = orjson.loads(line)
            if event.get("type") == "put":
                deliveries.received(event["value"], time.perf_counter())


async def writer(
    session: aiohttp.ClientSession,
    settings: WatchBenchSettings,
    deliveries: Deliveries,
    until: float,
) -> int:
    rng = random.Random(settings.seed)
    padding = "x" * max(0, settings.value_size - 20)
    interval, sent = 1 / settings.rate, 0
    next_at = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()

    async def put(key: str, value: str) -> None:
        try:
            async with session.put(f"{settings.endpoint}/kv/{key}", data=value.encode()) as r:
                await r.read()
                if r.status < 300:
                    now = time.perf_counter()
                    deliveries.acked_at[value] = now
                    deliveries.write_latency.append(now - deliveries.sent_at[value])
                else:
                    deliveries.write_errors += 1
        except aiohttp.ClientError:
            deliveries.write_errors += 1

    while time.perf_counter() < until:
        key = f"{KEY_PREFIX}{rng.randrange(settings.keys):06d}"
        value = f"{sent:012d}-{padding}"
        deliveries.sent_at[value] = time.perf_counter()
        task = asyncio.create_task(put(key, value))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    if pending:
        await asyncio.wait(pending, timeout=10)
    return sent


async def node_pid(session: aiohttp.ClientSession, endpoint: str) -> int:
    async with session.get(f"{endpoint}/status") as response:
        return int((await response.json())["pid"])


async def run_watch_bench(settings: WatchBenchSettings) -> dict[str, Any]:
    """Connect every watcher, then write at `rate` for `duration` seconds."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    deliveries = Deliveries()
    connected = asyncio.Event()
    count = [0]

    def one_ready() -> None:
        count[0] += 1
        if count[0] == settings.watchers:
            connected.set()

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        pid = await node_pid(session, settings.endpoint)
        streams = [
            asyncio.create_task(
                watcher(
                    session,
                    settings.endpoint,
                    f"{KEY_PREFIX}{i % settings.keys:06d}",
                    deliveries,
                    one_ready,
                )
            )
            for i in range(settings.watchers)
        ]
        await asyncio.wait_for(connected.wait(), CONNECT_SECONDS)
        sys.stderr.write(f"{settings.watchers} watchers connected; writing\n")
        deliveries.measuring = True
        node_cpu, own_cpu = cpu_seconds(pid), time.process_time()
        started = time.perf_counter()
        sent = await writer(session, settings, deliveries, started + settings.duration)
        await asyncio.sleep(1.0)  # the last deliveries
        elapsed = time.perf_counter() - started
        node_cpu, own_cpu = cpu_seconds(pid) - node_cpu, time.process_time() - own_cpu
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    expected_per_write = settings.watchers / settings.keys
    return {
        "workload": "watch",
        "watchers": settings.watchers,
        "keys": settings.keys,
        "writes": sent,
        "writes_per_s": round(sent / settings.duration, 1),
        "write_errors": deliveries.write_errors,
        "deliveries": len(deliveries.from_send),
        "deliveries_expected": round(sent * expected_per_write),
        "latency_from_send": latency_summary_ms(deliveries.from_send),
        "latency_from_ack": latency_summary_ms(deliveries.from_ack),
        "write_latency": latency_summary_ms(deliveries.write_latency),
        "node_core_share": round(node_cpu / elapsed, 2),
        "client_core_share": round(own_cpu / elapsed, 2),
    }


def format_watch_result(result: dict[str, Any]) -> str:
    send, ack = result["latency_from_send"], result["latency_from_ack"]
    write = result["write_latency"]
    return "\n".join(
        [
            f"{result['watchers']} watchers on {result['keys']} keys,"
            f" {result['writes_per_s']} writes/s ({result['write_errors']} errors),"
            f" {result['deliveries']} of {result['deliveries_expected']} expected deliveries",
            f"write sent -> watcher:  p50 {send['p50_ms']} ms  p99 {send['p99_ms']} ms"
            f"  p999 {send['p99.9_ms']} ms  max {send['max_ms']} ms",
            f"write sent -> acked:    p50 {write['p50_ms']} ms  p99 {write['p99_ms']} ms"
            f"  p999 {write['p99.9_ms']} ms  max {write['max_ms']} ms",
            f"write acked -> watcher: p50 {ack['p50_ms']} ms  p99 {ack['p99_ms']} ms"
            f"  p999 {ack['p99.9_ms']} ms  max {ack['max_ms']} ms",
            f"node CPU {result['node_core_share']:.0%} of a core;"
            f" this client {result['client_core_share']:.0%}",
        ]
    )
