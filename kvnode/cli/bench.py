"""`kvnode bench`: load a cluster (kvnode's or another store) and report latency."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from kvnode.bench import TARGETS, WORKLOADS
from kvnode.cli.common import (
    EXIT_CONFIG,
    endpoints_option,
    fail,
    main,
    report_option,
    require_plots,
)

CLIENT_BOTTLENECK_SHARE = 0.7  # of one core, above which `kvnode bench` measures itself


@main.command()
@endpoints_option
@click.option(
    "--workload",
    type=click.Choice(WORKLOADS),
    default="write",
    show_default=True,
)
@click.option("--target", type=click.Choice(TARGETS), default="kvnode", show_default=True)
@click.option(
    "--connections", default=16, show_default=True, help="Concurrent keep-alive connections."
)
@click.option("--duration", default=10.0, show_default=True, help="Seconds to measure.")
@click.option("--requests", type=int, help="Stop after this many requests instead of --duration.")
@click.option("--value-size", default=100, show_default=True, help="Bytes per value.")
@click.option("--keys", default=1000, show_default=True, help="Size of the key space.")
@click.option("--warmup", default=1.0, show_default=True, help="Seconds before measuring.")
@click.option("--seed", default=1, show_default=True)
@click.option(
    "--rate",
    default=500.0,
    show_default=True,
    help="Writes/s of the watch workload (its --connections are stream watchers).",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write results here.")
@report_option("the latency percentile curve and the answers per second")
def bench(json_path: Path | None, rate: float, **options: Any) -> None:
    """Load-test a cluster and print ops/s and latency percentiles.

    \b
    The watch workload opens --connections stream watchers on the first endpoint
    and writes --rate changes/s to the keys they watch; it reports the delay
    from write to watcher.
    Examples:
      kvnode bench --connections 64 --duration 10
      kvnode bench --workload read --endpoints 127.0.0.1:8002
      kvnode bench --workload watch --connections 1000 --rate 500
      kvnode bench --target etcd-v2 --endpoints 127.0.0.1:2379 --json etcd.json
    """
    import orjson

    from kvnode.bench.load import BenchSettings, format_table, run_load

    endpoints = options.pop("endpoints").split(",")
    require_plots(options["report_dir"])
    if options["workload"] == "watch":
        if options.pop("report_dir") is not None:
            fail("--report draws the request workloads, not watch", EXIT_CONFIG)
        watch_bench(endpoints[0], rate, options, json_path)
        return
    result = asyncio.run(run_load(BenchSettings(endpoints=endpoints, **options)))
    click.echo(format_table([result]))
    share = result["client_core_share"]
    click.echo(f"this client used {share:.0%} of a core")
    if share > CLIENT_BOTTLENECK_SHARE:
        click.echo(
            "warning: the client may be the bottleneck; compare servers with"
            " scripts/bench-vs-etcd.sh, which drives them with a native generator (hey)",
            err=True,
        )
    if json_path:
        json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


def watch_bench(
    endpoint: str, rate: float, options: dict[str, Any], json_path: Path | None
) -> None:
    import orjson

    from kvnode.bench.watch import WatchBenchSettings, format_watch_result, run_watch_bench
    from kvnode.client import normalize_endpoint

    if options["target"] != "kvnode":
        fail("the watch workload runs against kvnode only", EXIT_CONFIG)
    settings = WatchBenchSettings(
        normalize_endpoint(endpoint),
        watchers=options["connections"],
        rate=rate,
        keys=options["keys"],
        duration=options["duration"],
        value_size=options["value_size"],
        seed=options["seed"],
    )
    result = asyncio.run(run_watch_bench(settings))
    click.echo(format_watch_result(result))
    if json_path:
        json_path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
