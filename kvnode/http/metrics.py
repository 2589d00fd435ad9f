"""`/metrics`: Prometheus metrics of one node, in its own registry (several nodes may share
a process in tests).

Every request is counted, and its latency put in a bucket, in plain integers on the
event loop (the only thread that serves requests): no lock and no object per request.
prometheus_client's Counter and Histogram take a lock on every increment, which a
request paid twice. The counts become metric families only when scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from kvnode.service import Service
from kvnode.storage.timings import cumulative

HTTP_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"})
# Seconds: sub-millisecond buckets for reads served from memory, then prometheus_client's
# defaults (5 ms to 10 s) for writes and slow requests.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
STATUS_GAUGES = {
    "kvnode_raft_term": "term",
    "kvnode_raft_commit_index": "commit_index",
    "kvnode_applied_index": "applied_index",
    "kvnode_keys": "keys",
    "kvnode_store_bytes": "store_bytes",
    "kvnode_quota_bytes": "quota_bytes",
    "kvnode_wal_bytes": "wal_bytes",
    "kvnode_checkpoint_bytes": "checkpoint_bytes",
    "kvnode_raft_snapshot_bytes": "snapshot_bytes",
    "kvnode_journal_bytes": "journal_bytes",
    "kvnode_leases": "leases",
    "kvnode_proposals_pending": "proposals_pending",
    "kvnode_watchers": "watchers",
}
TIMING_HELP = {
    "apply": "applying one batch of committed entries to the state machine",
    "wal_fsync": "the state machine WAL's fdatasync",
    "journal_fsync": "the Raft journal's fdatasync (acknowledgements wait for it)",
    "checkpoint": "writing a state machine checkpoint (in a forked child, or inline)",
}
# (metric, /status field, help): counts that only grow while the process runs.
STATUS_COUNTERS = (
    ("kvnode_leader_changes", "leader_changes", "times this node saw the leader change"),
    ("kvnode_snapshots_installed", "snapshots_installed", "snapshots installed from a leader"),
    ("kvnode_snapshots_written", "snapshots_written", "Raft snapshots (log compactions)"),
    ("kvnode_tick_stalls", "tick_stalls", "Raft tick gaps over tick_stall_threshold_ms"),
    ("kvnode_watch_events", "watch_events", "watch events sent to watchers"),
    ("kvnode_proposals_committed", "proposals_committed", "proposals committed and applied"),
    ("kvnode_proposals_failed", "proposals_failed", "proposals certainly not applied"),
    (
        "kvnode_proposals_indeterminate",
        "proposals_indeterminate",
        "proposals whose outcome was not known in time",
    ),
)


class RequestCounts:
    """Requests by method and status, and latency by method and route, as plain counters.
    A route is the pattern that matched (`/kv/{key}`), so the series stay few."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        # Per (method, route): a count for each bucket (not cumulative; the last is +Inf).
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.seconds: dict[tuple[str, str], float] = {}

    def record(self, method: str, status: int, seconds: float, route: str = "") -> None:
        if method not in HTTP_METHODS:
            method = "other"  # a client's made-up method must not grow the series forever
        key = (method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        series = (method, route)
        buckets = self.buckets.get(series)
        if buckets is None:
            buckets = self.buckets[series] = [0] * (len(LATENCY_BUCKETS) + 1)
            self.seconds[series] = 0.0
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds[series] += seconds

    def collect(self) -> Iterator[Metric]:
        """The families a scrape shows (prometheus_client calls this at every scrape)."""
        counter = CounterMetricFamily(
            "kvnode_http_requests", "HTTP requests", labels=["method", "status"]
        )
        for (method, status), count in sorted(self.requests.items()):
            counter.add_metric([method, str(status)], count)
        yield counter
        histogram = HistogramMetricFamily(
            "kvnode_http_request_seconds", "HTTP request latency", labels=["method", "route"]
        )
        for series, counts in sorted(self.buckets.items()):
            buckets = cumulative(LATENCY_BUCKETS, counts)
            histogram.add_metric(list(series), buckets, self.seconds[series])
        yield histogram


class NodeCollector:
    """What a node says of itself in /status, as metric families at each scrape."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        status = self._service.status()  # scraped often: no digest, which is O(keys)
        for name, field in STATUS_GAUGES.items():
            yield GaugeMetricFamily(name, field.replace("_", " "), value=status[field])
        yield GaugeMetricFamily(
            "kvnode_is_leader", "1 on the leader", value=int(status["role"] == "leader")
        )
        yield GaugeMetricFamily(
            "kvnode_has_leader",
            "1 while this node knows a leader",
            value=int(status["leader_raft_addr"] is not None),
        )
        for name, field, what in STATUS_COUNTERS:
            yield CounterMetricFamily(name, what, value=status[field])


class TimingsCollector:
    """The node's operation durations (service.timings()) as histograms."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        for name, timings in sorted(self._service.timings().items()):
            counts, seconds = timings.snapshot()
            family = HistogramMetricFamily(f"kvnode_{name}_seconds", TIMING_HELP[name])
            family.add_metric([], cumulative(timings.buckets, counts), seconds)
            yield family
        acks = HistogramMetricFamily(
            "kvnode_peer_ack_seconds",
            "on the leader: from an append-entries message to a follower to its reply"
            " (network both ways plus the follower's journal fsync)",
            labels=["peer"],
        )
        for peer, timings in sorted(self._service.peer_ack_timings().items()):
            counts, seconds = timings.snapshot()
            acks.add_metric([peer], cumulative(timings.buckets, counts), seconds)
        yield acks


class Metrics:
    """The registry of one node: request counts, what the node reports of itself, and the
    process (CPU, memory, descriptors), platform and garbage-collector collectors."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        self.counts = RequestCounts()
        self.registry.register(self.counts)
        self.registry.register(NodeCollector(service))
        self.registry.register(TimingsCollector(service))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def record(self, method: str, status: int, seconds: float, route: str = "") -> None:
        self.counts.record(method, status, seconds, route)

    def render(self) -> bytes:
        return generate_latest(self.registry)
