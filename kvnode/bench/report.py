"""Latency summaries shared by every benchmark."""

from __future__ import annotations

from collections.abc import Sequence

PERCENTILES = (50, 90, 99, 99.9)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def latency_summary_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies_s)
    summary = {f"p{p:g}_ms": round(percentile(ordered, p) * 1000, 3) for p in PERCENTILES}
    summary["max_ms"] = round(ordered[-1] * 1000, 3) if ordered else 0.0
    return summary
