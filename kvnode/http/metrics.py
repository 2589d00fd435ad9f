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

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from kvnode.service import Service

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
    "kvnode_journal_bytes": "journal_bytes",
    "kvnode_snapshots_installed": "snapshots_installed",
}


class RequestCounts:
    """Requests by method and status, and latency by method, as plain counters."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        # Per method: a count for each bucket (not yet cumulative; the last is +Inf).
        self.buckets: dict[str, list[int]] = {}
        self.seconds: dict[str, float] = {}

    def record(self, method: str, status: int, seconds: float) -> None:
        if method not in HTTP_METHODS:
            method = "other"  # a client's made-up method must not grow the series forever
        key = (method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        buckets = self.buckets.get(method)
        if buckets is None:
            buckets = self.buckets[method] = [0] * (len(LATENCY_BUCKETS) + 1)
            self.seconds[method] = 0.0
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.seconds[method] += seconds

    def collect(self) -> Iterator[Metric]:
        """The families a scrape shows (prometheus_client calls this at every scrape)."""
        counter = CounterMetricFamily(
            "kvnode_http_requests", "HTTP requests", labels=["method", "status"]
        )
        for (method, status), count in sorted(self.requests.items()):
            counter.add_metric([method, str(status)], count)
        yield counter
        histogram = HistogramMetricFamily(
            "kvnode_http_request_seconds", "HTTP request latency", labels=["method"]
        )
        for method, counts in sorted(self.buckets.items()):
            cumulative, running = [], 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                running += count
                cumulative.append((_bound(bound), running))
            histogram.add_metric([method], cumulative, self.seconds[method])
        yield histogram


def _bound(seconds: float) -> str:
    return "+Inf" if seconds == float("inf") else repr(seconds)


class Metrics:
    """The registry of one node: request counts, and gauges read from /status at scrape."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        self.counts = RequestCounts()
        self.registry.register(self.counts)
        self._status_gauges = [
            (Gauge(name, field.replace("_", " "), registry=self.registry), field)
            for name, field in STATUS_GAUGES.items()
        ]
        self._is_leader = Gauge("kvnode_is_leader", "1 on the leader", registry=self.registry)
        self._service = service

    def record(self, method: str, status: int, seconds: float) -> None:
        self.counts.record(method, status, seconds)

    def render(self) -> bytes:
        status = self._service.status()  # scraped often: no digest, which is O(keys)
        for gauge, field in self._status_gauges:
            gauge.set(status[field])
        self._is_leader.set(1 if status["role"] == "leader" else 0)
        return generate_latest(self.registry)
