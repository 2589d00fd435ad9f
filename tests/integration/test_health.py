"""`kvnode health` judges a real cluster as its nodes stop: healthy (exit 0), degraded
with a majority left (exit 8), down without one (exit 1), naming the nodes it could not
reach; `--cluster` finds every member from one endpoint."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.integration import conftest
from tests.integration.cli_processes import kvnode

pytestmark = pytest.mark.slow


def health(endpoints: str, *flags: str) -> tuple[int, dict]:
    result = kvnode("health", "--json", "--endpoints", endpoints, *flags)
    assert b"Traceback" not in result.stderr, result.stderr
    return result.returncode, orjson.loads(result.stdout)


def test_health_is_healthy_then_degraded_then_down(tmp_path: Path) -> None:
    local = conftest.make_cluster(tmp_path / "c")
    endpoints = ",".join(node.http_addr for node in local.nodes)
    try:
        code, report = health(endpoints)
        assert (code, report["health"]) == (0, "healthy"), report
        assert sorted(n["role"] for n in report["nodes"]) == ["follower", "follower", "leader"]
        assert all(n["lag"] is not None and n["latency_ms"] is not None for n in report["nodes"])

        found = health(local.nodes[0].http_addr, "--cluster")[1]
        assert len(found["nodes"]) == 3, "--cluster did not find every member"

        leader = next(i for i, n in enumerate(report["nodes"]) if n["role"] == "leader")
        follower = (leader + 1) % 3
        local.stop(follower)
        code, report = health(endpoints)
        assert (code, report["health"]) == (8, "degraded"), report
        stopped = report["nodes"][follower]
        assert not stopped["healthy"] and "refused" in stopped["error"], stopped
        table = kvnode("health", "--endpoints", endpoints)
        assert table.returncode == 8
        assert b"cluster degraded" in table.stdout and b"unhealthy" in table.stdout

        local.stop((leader + 2) % 3)
        code, report = health(endpoints)
        assert (code, report["health"]) == (1, "down"), report
    finally:
        local.stop_all()
    conftest.assert_clean_logs(local)
