"""A chaos run as a page: `kvnode chaos --report DIR` writes DIR/index.html, with the
latency of every operation over time (by outcome) and the throughput per second, the
fault windows shaded and labelled with their node, the leader changes marked, and the
checker's verdict with the minimal failing sub-history of each violation. The raw
history and the report are written beside it as JSON.

The plots are inline SVG (kvnode.pages), so the page reads offline. Every text from the
run (keys, values, errors) is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from kvnode.pages import figure_svg, pyplot, write_page

from .history import FAIL, INFO, OK, Op

OUTCOME_STYLE = {  # outcome: (label, colour, marker)
    OK: ("ok", "#2a9d55", "."),
    FAIL: ("failed (not applied)", "#d1495b", "v"),
    INFO: ("indeterminate", "#f2a541", "x"),
}
FAULT_COLOURS = {"kill": "#d1495b", "pause": "#7a6fd6", "partition": "#3a86c8", "wipe": "#444"}


def write_chaos_report(
    directory: Path, report: dict[str, Any], history: Sequence[Op], summary: str
) -> Path:
    """Writes index.html, report.json and history.json into `directory`; returns the page.
    `summary` is the run's text report, shown above the plots."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "history.json").write_bytes(orjson.dumps([op.to_json() for op in history]))
    (directory / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    verdict = "VALID" if report["valid"] else "INVALID"
    sections = chaos_sections(report, history, summary)
    return write_page(directory / "index.html", f"kvnode chaos: {verdict}", sections)


def chaos_sections(report: dict[str, Any], history: Sequence[Op], summary: str) -> list[str]:
    started = report.get("started", min((op.invoke for op in history), default=0.0))
    verdict = "VALID" if report["valid"] else "INVALID"
    sections = [
        f'<h1>kvnode chaos run: <span class="{verdict.lower()}">{verdict}</span></h1>',
        f"<pre>{html.escape(summary)}</pre>",
        timeline_svg(report, history, started),
        fault_table(report.get("fault_log", []), started),
        leader_table(report.get("leader_changes", []), started),
        violations_section(report),
        '<p>Raw data: <a href="history.json">history.json</a> (every operation, monotonic'
        ' seconds), <a href="report.json">report.json</a>.</p>',
    ]
    return sections


def timeline_svg(report: dict[str, Any], history: Sequence[Op], started: float) -> str:
    """Latency (log scale) and throughput over the run's seconds, one figure."""
    ops = [op for op in history if op.process >= 0]  # the final reads are not the load
    end = max((op.invoke for op in ops), default=started) - started
    figure, (latency, throughput) = pyplot().subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    ceiling = plot_latency(latency, ops, started)
    plot_throughput(throughput, ops, started, end)
    for axes in (latency, throughput):
        shade_faults(axes, report.get("fault_log", []), started, label=axes is latency)
        mark_leaders(axes, report.get("leader_changes", []), started, label=axes is latency)
    latency.set_ylim(top=ceiling * 3)
    throughput.set_xlabel("seconds since the faults began")
    return figure_svg(figure)


def plot_latency(axes: Any, ops: Sequence[Op], started: float) -> float:
    """A dot per operation at its invocation; an indeterminate one without an answer is
    drawn at the top. Returns the highest latency drawn, in ms."""
    answered = [op for op in ops if not math.isinf(op.complete)]
    ceiling = max(((op.complete - op.invoke) * 1000 for op in answered), default=1.0)
    for outcome, (label, colour, marker) in OUTCOME_STYLE.items():
        chosen = [op for op in ops if op.outcome == outcome]
        if not chosen:
            continue
        seconds = [op.invoke - started for op in chosen]
        millis = [
            ceiling if math.isinf(op.complete) else max((op.complete - op.invoke) * 1000, 0.01)
            for op in chosen
        ]
        axes.scatter(
            seconds, millis, s=6, c=colour, marker=marker, label=f"{label} ({len(chosen)})"
        ).set_gid(f"latency-{outcome}")
    axes.set_yscale("log")
    axes.set_ylabel("latency (ms)")
    axes.legend(loc="upper right", fontsize=8)
    return ceiling


def plot_throughput(axes: Any, ops: Sequence[Op], started: float, end: float) -> None:
    """Operations answered per second, stacked by outcome."""
    seconds = max(1, math.ceil(end))
    below = [0] * seconds
    for outcome, (_label, colour, _marker) in OUTCOME_STYLE.items():
        counts = [0] * seconds
        for op in ops:
            if op.outcome == outcome and not math.isinf(op.complete):
                counts[min(seconds - 1, max(0, int(op.complete - started)))] += 1
        axes.bar(
            range(seconds),
            counts,
            bottom=below,
            width=1.0,
            align="edge",
            color=colour,
            gid=f"throughput-{outcome}",
        )
        below = [b + c for b, c in zip(below, counts, strict=True)]
    axes.set_ylabel("answers / s")


def shade_faults(axes: Any, faults: Sequence[dict[str, Any]], started: float, label: bool) -> None:
    """Each fault's window, shaded in its kind's colour, named on the top plot."""
    for fault in faults:
        if "fault" not in fault:
            continue  # a warning line of the nemesis log
        kind = fault["fault"].removesuffix("-leader")
        begin = fault["at"] - started
        band = axes.axvspan(begin, begin + fault.get("held", 0.0), alpha=0.15, lw=0)
        band.set_color(FAULT_COLOURS.get(kind, "#888"))
        band.set_gid(f"fault-{kind}")
        if label:
            upright_label(axes, f"{fault['fault']} {fault['node']}", begin, 1.0, va="top")


def mark_leaders(axes: Any, changes: Sequence[dict[str, Any]], started: float, label: bool) -> None:
    """A dashed line where an observer saw a new leader (or none) take over."""
    for change in changes:
        at = change["at"] - started
        axes.axvline(at, color="#222", ls="--", lw=0.8).set_gid("leader-change")
        if label:
            upright_label(axes, change["node"] or "no leader", at, 0.02)


def upright_label(axes: Any, text: str, x: float, height: float, **style: Any) -> None:
    """Small vertical text at time `x`, `height` up the plot (0 bottom, 1 top)."""
    axes.annotate(
        text, (x, height), xycoords=("data", "axes fraction"), rotation=90, fontsize=7, **style
    )


def fault_table(faults: Sequence[dict[str, Any]], started: float) -> str:
    rows = [
        f"<tr><td>{fault['at'] - started:.2f}</td><td>{html.escape(fault['fault'])}</td>"
        f"<td>{html.escape(fault['node'])}</td><td>{fault.get('held', '')}</td>"
        f"<td>{html.escape(fault.get('kind', ''))}</td></tr>"
        for fault in faults
        if "fault" in fault
    ]
    head = "<tr><th>at (s)</th><th>fault</th><th>node</th><th>held (s)</th><th>kind</th></tr>"
    return f"<h2>Faults</h2><table>{head}{''.join(rows)}</table>" if rows else ""


def leader_table(changes: Sequence[dict[str, Any]], started: float) -> str:
    rows = [
        f"<tr><td>{change['at'] - started:.2f}</td>"
        f"<td>{html.escape(change['node'] or 'none seen')}</td><td>{change['term'] or ''}</td></tr>"
        for change in changes
    ]
    head = "<tr><th>at (s)</th><th>leader</th><th>term</th></tr>"
    return f"<h2>Leaders seen</h2><table>{head}{''.join(rows)}</table>" if rows else ""


def violations_section(report: dict[str, Any]) -> str:
    parts = []
    for violation in report.get("violations", []):
        lines = "\n".join(html.escape(line) for line in violation["minimal_history"])
        parts.append(
            f"<h3>key {html.escape(violation['key'])}: {html.escape(violation['reason'])}</h3>"
            f'<pre class="minimal">{lines}</pre>'
        )
    lost = report.get("lost_writes", [])
    if lost:
        items = "\n".join(html.escape(line) for line in lost)
        parts.append(f'<h3>Acknowledged writes lost</h3><pre class="minimal">{items}</pre>')
    if not parts:
        return (
            "<h2>Checker</h2><p>Every key's history is linearizable;"
            " no acknowledged write was lost.</p>"
        )
    return "<h2>Checker: minimal failing sub-histories</h2>" + "".join(parts)
