"""docs/client.md's example runs as written against a live cluster (its endpoints swapped
for the cluster's), and prints what the document says it shows."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from kvnode.cluster.supervisor import LocalCluster

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
EXAMPLE = re.compile(r"```python\n(.*?)```", re.S)
DOC_ENDPOINTS = '["http://127.0.0.1:8001", "http://127.0.0.1:8002"]'


def test_the_client_example_runs_as_written(shared_cluster: LocalCluster) -> None:
    (example,) = EXAMPLE.findall(DOC.read_text())
    assert DOC_ENDPOINTS in example
    program = "import asyncio\n\nasync def example():\n" + textwrap.indent(
        example.replace(DOC_ENDPOINTS, repr(shared_cluster.urls)), "    "
    )
    program += "\nasyncio.run(example())\n"
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert re.fullmatch(r"config/mode \d+ b'slow'", lines[0]), lines
    assert re.fullmatch(r"put config/mode b'fast'", lines[1]), lines
    assert re.fullmatch(r"held with fencing token \d+", lines[2]), lines
