"""`kvnode health` and `kvnode status`: every node asked at once, each within a short
deadline, so that a dead node costs seconds, not a retry budget; health turns the answers
into a verdict with an exit code a script can act on (as `etcdctl endpoint health`)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
import orjson

from kvnode.cli.common import (
    EXIT_DEGRADED,
    EXIT_FAILED,
    ClientOptions,
    client_command,
    echo_json,
    main,
)

if TYPE_CHECKING:
    from kvnode.client import Client

DEFAULT_NODE_TIMEOUT = 2.0

node_timeout_option = click.option(
    "--node-timeout",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_NODE_TIMEOUT,
    show_default=True,
    help="Seconds each node has to answer before it counts as unreachable.",
)
cluster_option = click.option(
    "--cluster",
    is_flag=True,
    help="Ask every member the cluster lists (GET /cluster/members), not only --endpoints.",
)


@dataclass
class NodeReport:
    """What one node said about itself, or why it said nothing."""

    endpoint: str
    status: dict[str, Any] | None = None
    ready: bool = False
    latency_ms: float | None = None
    error: str = ""
    lag: int | None = None

    @property
    def healthy(self) -> bool:
        return self.status is not None and self.ready

    def to_json(self) -> dict[str, Any]:
        s = self.status or {}
        return {
            "endpoint": self.endpoint,
            "healthy": self.healthy,
            "node_id": s.get("node_id"),
            "role": s.get("role"),
            "term": s.get("term"),
            "applied_index": s.get("applied_index"),
            "lag": self.lag,
            "latency_ms": self.latency_ms,
            "error": self.error or None,
        }


async def probe(client: Client, endpoint: str, deadline: float) -> NodeReport:
    """`/status` and `/ready` of one node, both within `deadline` seconds."""
    from kvnode.client import KvError, Unavailable

    report = NodeReport(endpoint)
    started = time.monotonic()
    try:
        report.status = await asyncio.wait_for(client.status(endpoint=endpoint), deadline)
        report.latency_ms = round((time.monotonic() - started) * 1000, 1)
        left = max(deadline - (time.monotonic() - started), 0.1)
        await asyncio.wait_for(
            client.request("GET", "/ready", endpoint=endpoint, idempotent=True), left
        )
        report.ready = True
    except TimeoutError:
        report.error = f"no answer within {deadline:g} s"
    except Unavailable as exc:
        # A node that answers /status but not /ready says why in its body.
        report.error = exc.message if report.status is None else f"not ready: {exc.message}"
    except KvError as exc:
        report.error = str(exc)
    return report


async def member_endpoints(client: Client, deadline: float) -> list[str]:
    """The HTTP URL of every member, from the first endpoint that lists them."""
    from kvnode.client import KvError

    for endpoint in client.endpoints:
        try:
            members = await asyncio.wait_for(
                client.request("GET", "/cluster/members", endpoint=endpoint, idempotent=True),
                deadline,
            )
        except (KvError, TimeoutError):
            continue
        urls = [m["http_url"] for m in orjson.loads(members[1]) if m.get("http_url")]
        if urls:
            return urls
    return list(client.endpoints)


async def survey(client: Client, deadline: float, whole_cluster: bool) -> list[NodeReport]:
    """Every node's report, asked at once; each node's lag behind the highest commit
    index any node reported (the leader's, when it answered)."""
    endpoints = await member_endpoints(client, deadline) if whole_cluster else client.endpoints
    reports = list(await asyncio.gather(*(probe(client, e, deadline) for e in endpoints)))
    commits = [r.status["commit_index"] for r in reports if r.status is not None]
    for report in reports:
        if report.status is not None and commits:
            report.lag = max(commits) - report.status["applied_index"]
    return reports


@dataclass(frozen=True)
class Verdict:
    state: str  # "healthy", "degraded" or "down"
    summary: str

    @property
    def exit_code(self) -> int:
        return {"healthy": 0, "degraded": EXIT_DEGRADED}.get(self.state, EXIT_FAILED)


def judge(reports: list[NodeReport]) -> Verdict:
    """Healthy: every node ready, and all that answered agree on one leader in one term.
    Degraded: that leader and a majority of the nodes are ready, not all. Down: less."""
    answered = [r.status for r in reports if r.status is not None]
    leaders = {(s["leader"], s["term"]) for s in answered if s.get("leader")}
    leading = [s for s in answered if s["role"] == "leader"]
    ready = sum(r.healthy for r in reports)
    total = len(reports)
    if len(leaders) != 1 or len(leading) != 1:
        seen = ", ".join(sorted(str(url) for url, _term in leaders)) or "none"
        return Verdict("down", f"no single leader (seen: {seen}); {ready} of {total} ready")
    name = f"leader {leading[0]['node_id']} (term {leading[0]['term']})"
    if ready == total:
        return Verdict("healthy", f"{name}; {ready} of {total} nodes healthy")
    if ready * 2 > total:
        sick = ", ".join(
            f"{r.endpoint} ({r.error or 'not ready'})" for r in reports if not r.healthy
        )
        return Verdict("degraded", f"{name}; {ready} of {total} healthy; unhealthy: {sick}")
    return Verdict("down", f"{name}, but only {ready} of {total} nodes are ready")


@main.command()
@node_timeout_option
@cluster_option
@client_command
def health(node_timeout: float, cluster: bool, client: ClientOptions) -> None:
    """Is the cluster healthy? One line per node (role, term, applied index, lag behind
    the leader's commit, latency) and a verdict. Every node is asked at once.

    \b
    Exit code: 0 healthy (every node ready, one leader); 8 degraded (a leader and a
    majority ready, not every node); 1 down (no single leader, or no ready majority).

    \b
    Examples:
      kvnode health
      kvnode health --cluster --endpoints 10.0.0.1:8001 --json
    """
    reports = client.run(lambda c: survey(c, node_timeout, cluster), retry_reads=False)
    verdict = judge(reports)
    if client.as_json:
        echo_json(
            {
                "health": verdict.state,
                "summary": verdict.summary,
                "nodes": [r.to_json() for r in reports],
            }
        )
    else:
        header = f"{'ENDPOINT':28} {'NODE':8} {'ROLE':10} {'TERM':>5} {'APPLIED':>8} {'LAG':>6}"
        click.echo(f"{header} {'LATENCY':>9}  HEALTH")
        for r in reports:
            s = r.status or {}
            latency = f"{r.latency_ms:.1f} ms" if r.latency_ms is not None else "-"
            click.echo(
                f"{r.endpoint:28} {s.get('node_id', '-'):8} {s.get('role', '-'):10} "
                f"{s.get('term', '-'):>5} {s.get('applied_index', '-'):>8} "
                f"{'-' if r.lag is None else r.lag:>6} {latency:>9}  "
                + ("healthy" if r.healthy else f"unhealthy: {r.error or 'not ready'}")
            )
        click.echo(f"cluster {verdict.state}: {verdict.summary}")
    sys.exit(verdict.exit_code)


@main.command()
@node_timeout_option
@cluster_option
@client_command
def status(node_timeout: float, cluster: bool, client: ClientOptions) -> None:
    """Who leads, and is everyone caught up? One line per node, every node asked at once
    (exit code 1 only if no node answers; `kvnode health` judges the cluster).

    \b
    Examples:
      kvnode status --endpoints 127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003
      kvnode status --cluster --json
    """
    reports = client.run(lambda c: survey(c, node_timeout, cluster), retry_reads=False)
    if client.as_json:
        echo_json({r.endpoint: r.status for r in reports})
    else:
        click.echo(
            f"{'ENDPOINT':28} {'NODE':8} {'ROLE':10} {'TERM':>5} {'COMMIT':>8} {'APPLIED':>8}"
        )
        for r in reports:
            s = r.status
            if s is None:
                click.echo(f"{r.endpoint:28} {'-':8} {'unreachable':10} ({r.error})")
                continue
            click.echo(
                f"{r.endpoint:28} {s['node_id']:8} {s['role']:10} {s['term']:>5} "
                f"{s['commit_index']:>8} {s['applied_index']:>8}"
            )
    if all(r.status is None for r in reports):
        sys.exit(EXIT_FAILED)
