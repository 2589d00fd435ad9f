"""The committed protobuf module must be exactly what scripts/gen-proto.sh generates."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_commands_pb2_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "gen-proto.sh"), str(tmp_path)], check=True)
    for name in ("commands_pb2.py", "commands_pb2.pyi"):
        fresh = (tmp_path / "kvnode" / name).read_text()
        committed = (ROOT / "kvnode" / name).read_text()
        assert fresh == committed, f"kvnode/{name} is stale: run scripts/gen-proto.sh"
