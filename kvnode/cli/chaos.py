"""`kvnode chaos`: faults against a local cluster while clients run; the history checked."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from kvnode.cli.common import (
    EXIT_CONFIG,
    fail,
    main,
    report_option,
    require_plots,
)
from kvnode.cluster import NEMESES


@main.command()
@click.option("--duration", default=30.0, show_default=True, help="Seconds of faults and load.")
@click.option(
    "--nemesis",
    "nemeses",
    default="kill,pause",
    show_default=True,
    help=f"Comma-separated: {', '.join(NEMESES)}.",
)
@click.option("--seed", default=1, show_default=True)
@click.option("--clients", default=10, show_default=True)
@click.option("--rate", default=20.0, show_default=True, help="Operations/s per client.")
@click.option(
    "--watchers",
    default=2,
    show_default=True,
    type=click.IntRange(0),
    help="Clients watching every key through the faults; what they saw is checked too.",
)
@click.option(
    "--locks",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="`kvnode lock` contenders, paused, stopped and killed themselves; no two critical"
    " sections may overlap in time, and fencing tokens must grow.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report here.")
@click.option(
    "--history", "history_path", type=click.Path(path_type=Path), help="Save the raw history."
)
@report_option(
    "latency and throughput over time with the faults and leader changes marked, and the verdict"
)
@click.option(
    "--check",
    "check_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Do not run: judge a history saved with --history again.",
)
def chaos(
    duration: float,
    nemeses: str,
    seed: int,
    clients: int,
    rate: float,
    watchers: int,
    locks: int,
    json_path: Path | None,
    history_path: Path | None,
    report_dir: Path | None,
    check_path: Path | None,
) -> None:
    """Run a local cluster under faults and check the history (exit 1 on any violation).

    \b
    Partitions run each node in its own network namespace and need root.
    Examples:
      kvnode chaos --duration 60 --nemesis kill,pause
      kvnode chaos --duration 60 --nemesis kill-leader,pause --locks 4
      kvnode chaos --duration 1800 --nemesis kill,pause,partition,wipe --json soak.json
      kvnode chaos --duration 60 --report chaos-report   # then open chaos-report/index.html
      kvnode chaos --check history.json
    """
    import orjson

    from kvnode.cluster.chaos import (
        ChaosSettings,
        format_judgement,
        format_report,
        judge,
        run_chaos,
    )
    from kvnode.cluster.history import load_history
    from kvnode.cluster.netns import NetnsError, available

    require_plots(report_dir)

    if check_path is not None:
        try:
            history = load_history(check_path.read_bytes())
        except ValueError as exc:
            message = f"{check_path}: not a history saved by `kvnode chaos --history`: {exc}"
            fail(message, EXIT_CONFIG)
        judgement = judge(history)
        summary = f"operations: {len(history)}\n{format_judgement(judgement)}"
        click.echo(summary)
        if report_dir is not None:
            from kvnode.cluster.report_page import write_chaos_report

            write_chaos_report(report_dir, judgement, history, summary)
        if json_path:
            json_path.write_bytes(orjson.dumps(judgement, option=orjson.OPT_INDENT_2))
        sys.exit(0 if judgement["valid"] else 1)
    chosen = [n.strip() for n in nemeses.split(",") if n.strip()]
    if "partition" in chosen and (reason := available()):
        fail(reason, EXIT_CONFIG)
    settings = ChaosSettings(
        duration,
        chosen,
        seed,
        clients,
        rate,
        history_path=history_path,
        report_dir=report_dir,
        watchers=watchers,
        locks=locks,
    )
    try:
        report = asyncio.run(run_chaos(settings))
    except (ValueError, NetnsError) as exc:
        fail(str(exc), EXIT_CONFIG)
    click.echo(format_report(report))
    if json_path:
        json_path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    sys.exit(0 if report["valid"] else 1)
