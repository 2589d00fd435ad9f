"""Scoped tokens across a real cluster: created through one node with the CLI, honoured
by every node (replicated) and after a restart (durable), refused once revoked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration import conftest
from tests.integration.cli_processes import kvnode
from tests.waiting import wait_until_sync

pytestmark = pytest.mark.slow

ROOT = "root-token-for-the-test"


def ok(result: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes] | None:
    return result if result.returncode == 0 else None


def test_a_scoped_token_is_replicated_durable_and_revocable(tmp_path: Path) -> None:
    local = conftest.make_cluster(tmp_path / "c", auth_token=ROOT)
    try:
        first, last = local.nodes[0].http_addr, local.nodes[-1].http_addr
        root = ("--token", ROOT)
        made = kvnode(
            "token",
            "create",
            "--role",
            "read",
            "--prefix",
            "app/",
            "--id",
            "app-reader",
            "--endpoints",
            first,
            *root,
        )
        assert made.returncode == 0, made.stderr
        secret = made.stdout.decode().strip()
        assert b"created token app-reader: read on app/" in made.stderr
        assert kvnode("put", "app/x", "v", "--endpoints", first, *root).returncode == 0
        reader = ("--token", secret)
        # Each node honours a token once it has applied its creation (a heartbeat or so).
        got = wait_until_sync(
            lambda: ok(kvnode("get", "app/x", "--endpoints", last, *reader)),
            30,
            "the last node to honour the new token",
        )
        assert got.stdout == b"v\n"
        refused = kvnode("put", "app/x", "w", "--endpoints", last, *reader)
        assert refused.returncode == 6 and b"403 forbidden" in refused.stderr, refused.stderr
        outside = kvnode("get", "other", "--endpoints", last, *reader)
        assert outside.returncode == 6

        local.stop(len(local.nodes) - 1)
        local.start(len(local.nodes) - 1)
        again = kvnode("get", "app/x", "--endpoints", last, *reader, "--timeout", "60")
        assert again.returncode == 0, again.stderr

        listed = kvnode("token", "list", "--endpoints", first, *root)
        assert b"app-reader" in listed.stdout and secret.encode() not in listed.stdout
        assert kvnode("token", "revoke", "app-reader", "--endpoints", first, *root).returncode == 0
        for node in local.nodes:

            def refused_by(endpoint: str = node.http_addr) -> bool:
                gone = kvnode("get", "app/x", "--endpoints", endpoint, *reader)
                return gone.returncode == 6 and b"401 unauthorized" in gone.stderr

            wait_until_sync(refused_by, 30, f"{node.node_id} to refuse the revoked token")
    finally:
        local.stop_all()
    conftest.assert_clean_logs(local)
