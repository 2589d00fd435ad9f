"""`kvnode bench --report DIR`: the run as a page, DIR/index.html, with the latency
distribution (a percentile curve, the tail drawn out on a log scale) and the answers
per second over the measured time, plus the summary as JSON beside it."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from kvnode.bench.report import percentile
from kvnode.pages import figure_svg, pyplot, write_page

# Where the percentile curve is sampled: 0 to 99.99, denser towards the tail.
CURVE_POINTS = [100 * (1 - 10 ** (-k / 20)) for k in range(0, 81)]


def write_bench_report(
    directory: Path,
    summary: dict[str, Any],
    latencies: Sequence[float],
    answered: Sequence[float],
) -> Path:
    """Writes index.html and summary.json into `directory`; returns the page. `latencies`
    are each answer's seconds, `answered` when it came (seconds since measuring began)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    title = (
        f"kvnode bench: {summary['target']} {summary['workload']}"
        f" x{summary['connections']}, {summary['ops_per_s']} ops/s"
    )
    table = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{value}</td></tr>"
        for name, value in summary["latency"].items()
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        bench_svg(latencies, answered, summary["duration_s"]),
        f"<h2>Latency</h2><table>{table}</table>",
        f"<pre>{html.escape(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())}</pre>",
    ]
    return write_page(directory / "index.html", title, sections)


def bench_svg(latencies: Sequence[float], answered: Sequence[float], duration: float) -> str:
    """The percentile curve beside the answers per second."""
    figure, (curve, rate) = pyplot().subplots(1, 2, figsize=(11, 4))
    ordered = sorted(latencies)
    # x: how many nines ("99%" sits at 2): the tail gets as much room as the body.
    nines = [-math.log10(1 - p / 100) for p in CURVE_POINTS]
    millis = [percentile(ordered, p) * 1000 for p in CURVE_POINTS]
    curve.plot(nines, millis, color="#3a86c8", gid="latency-curve")
    ticks = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99]
    curve.set_xticks([-math.log10(1 - p / 100) for p in ticks], [f"{p:g}" for p in ticks])
    curve.set_xlabel("percentile")
    curve.set_ylabel("latency (ms)")
    seconds = max(1, math.ceil(duration))
    counts = [0] * seconds
    for at in answered:
        if at >= 0:
            counts[min(seconds - 1, int(at))] += 1
    rate.bar(range(seconds), counts, width=1.0, align="edge", color="#2a9d55", gid="throughput")
    rate.set_xlabel("seconds")
    rate.set_ylabel("answers / s")
    return figure_svg(figure)
