"""The dashboard and the alert rules in docs/monitoring/ use only series a node exports:
a renamed metric fails here, not on an operator's empty panel or silent alert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.unit.api.served_api import Api, make_api

MONITORING = Path(__file__).resolve().parents[3] / "docs" / "monitoring"
SERIES = re.compile(r"\b((?:kvnode|process|python)_[a-z_]+)")


@pytest.fixture
def scraped(tmp_path: Path) -> str:
    """/metrics of a node that served a write, a read and a watch."""
    api: Api = make_api(tmp_path)
    try:
        api("PUT", "/kv/k", data=b"v")
        api("GET", "/kv/k")
        api("GET", "/kv/k?watch=true&from_revision=1&timeout=1")
        return api("GET", "/metrics").body.decode()
    finally:
        api.close()


def exported(scraped: str) -> set[str]:
    return set(re.findall(r"^([a-z_]+)[{ ]", scraped, re.MULTILINE))


def test_every_dashboard_series_is_exported(scraped: str) -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in expressions for name in SERIES.findall(expr)}
    assert len(used) > 10, "the dashboard names too few series: the check would prove little"
    assert used <= exported(scraped), sorted(used - exported(scraped))


def test_every_alert_rule_uses_exported_series(scraped: str) -> None:
    rules = (MONITORING / "alerts.yml").read_text()
    expressions = re.findall(r"^\s+expr: (.+)$", rules, re.MULTILINE)
    assert len(expressions) == len(re.findall(r"^\s+- alert: ", rules, re.MULTILINE)) >= 5
    used = {name for expr in expressions for name in SERIES.findall(expr)}
    assert used <= exported(scraped), sorted(used - exported(scraped))
