"""The dashboard and the alert rules in docs/monitoring/ use only series a real node
exports: a renamed metric fails here, not on an operator's empty panel or silent alert."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster

pytestmark = pytest.mark.slow

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
SERIES = re.compile(r"\b((?:kvnode|process|python)_[a-z_]+)")


@pytest.fixture(scope="module")
def exported(shared_cluster: LocalCluster) -> set[str]:
    """The series of every node's /metrics, once each has served a write, a read and a
    watch."""

    async def scrape() -> set[str]:
        names: set[str] = set()
        async with Client(shared_cluster.urls, timeout=10) as client:
            await client.put("monitoring/k", b"v")
            for url in shared_cluster.urls:
                await client.get("monitoring/k", endpoint=url)
                await client.request(
                    "GET",
                    "/kv/monitoring/k",
                    params={"watch": "true", "from_revision": "1", "timeout": "1"},
                    endpoint=url,
                    idempotent=True,
                )
                _status, body, _headers = await client.request(
                    "GET", "/metrics", endpoint=url, idempotent=True
                )
                names |= set(re.findall(r"^([a-z_]+)[{ ]", body.decode(), re.MULTILINE))
        return names

    return asyncio.run(scrape())


def test_every_dashboard_series_is_exported(exported: set[str]) -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in expressions for name in SERIES.findall(expr)}
    assert len(used) > 10, "the dashboard names too few series: the check would prove little"
    assert used <= exported, sorted(used - exported)


def test_every_alert_rule_uses_exported_series(exported: set[str]) -> None:
    rules = (MONITORING / "alerts.yml").read_text()
    expressions = re.findall(r"^\s+expr: (.+)$", rules, re.MULTILINE)
    assert len(expressions) == len(re.findall(r"^\s+- alert: ", rules, re.MULTILINE)) >= 5
    used = {name for expr in expressions for name in SERIES.findall(expr)}
    assert used <= exported, sorted(used - exported)
