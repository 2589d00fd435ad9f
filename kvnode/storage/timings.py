"""Durations of slow, rare operations (an fsync, an apply batch) in fixed buckets, for
/metrics. These run in the Raft, sync and loop threads, each taking milliseconds, so a
lock per observation costs nothing in comparison; per-request counting is lock-free
elsewhere (http/metrics.py)."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

# Seconds, doubling from 0.5 ms to 8 s: etcd's buckets for its WAL fsync and apply.
DISK_BUCKETS = tuple(0.0005 * 2**i for i in range(15))
# Seconds, doubling from 10 ms to about 80 s: writing a whole state (a checkpoint).
STATE_BUCKETS = tuple(0.01 * 2**i for i in range(14))


class Timings:
    def __init__(self, buckets: Sequence[float] = DISK_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)  # the last is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._sum += seconds

    @contextmanager
    def timing(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started)

    def snapshot(self) -> tuple[list[int], float]:
        """Counts per bucket (not cumulative; the last is +Inf) and the sum of seconds."""
        with self._lock:
            return list(self._counts), self._sum


def cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, int]]:
    """Prometheus histogram buckets (`le` label, cumulative count) from per-bucket counts
    whose last entry is the +Inf bucket."""
    result, running = [], 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        result.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return result
