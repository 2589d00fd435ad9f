"""The kvnode CLI as a user runs it: client commands, bad configuration, cluster up."""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kvnode.client import Client
from kvnode.cluster.chaos import FINAL_READER
from kvnode.cluster.history import OK, Op
from kvnode.cluster.supervisor import LocalCluster, free_ports
from kvnode.storage.layout import RAFT_JOURNAL, RAFT_SNAPSHOT
from tests.integration.cli_processes import ClusterUp, alive, kvnode
from tests.integration.conftest import make_cluster
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def endpoints(shared_cluster: LocalCluster) -> Iterator[str]:
    yield ",".join(node.http_addr for node in shared_cluster.nodes)


def test_put_get_cas_list_delete_round_trip(endpoints: str) -> None:
    e = ("--endpoints", endpoints)
    put = kvnode("put", "cli/greeting", "hello", *e)
    assert put.returncode == 0 and put.stdout.startswith(b"created cli/greeting at revision ")
    assert kvnode("get", "cli/greeting", *e).stdout == b"hello\n"
    failed = kvnode("cas", "cli/greeting", "hi", "--prev-value", "nope", *e)
    assert failed.returncode == 5 and b"412 compare_failed" in failed.stderr
    assert kvnode("cas", "cli/greeting", "hi", "--prev-value", "hello", *e).returncode == 0
    listed = orjson.loads(kvnode("list", "--prefix", "cli/", "--values", "--json", *e).stdout)
    assert [(i["key"], i["value"]) for i in listed] == [("cli/greeting", "hi")]
    assert kvnode("delete", "cli/greeting", *e).returncode == 0
    missing = kvnode("get", "cli/greeting", *e)
    assert missing.returncode == 4 and b"not found" in missing.stderr


def test_put_reads_the_value_from_stdin_and_get_json(endpoints: str) -> None:
    e = ("--endpoints", endpoints)
    assert kvnode("put", "cli/blob", "--ttl", "60", *e, stdin=b"from stdin").returncode == 0
    shown = orjson.loads(kvnode("get", "cli/blob", "--json", *e).stdout)
    assert shown["value"] == "from stdin" and shown["expire_at"] > time.time() * 1000


def test_binary_values_round_trip_and_a_binary_key_is_a_usage_error(endpoints: str) -> None:
    e = ("--endpoints", endpoints)
    put = subprocess.run(
        [sys.executable, "-m", "kvnode", "put", "cli/bin", b"\xff\xfe\x01", *e],
        capture_output=True,
        timeout=30,
    )
    assert put.returncode == 0, put.stderr
    assert kvnode("get", "cli/bin", *e).stdout == b"\xff\xfe\x01"  # exactly, no newline
    assert kvnode("get", "cli/bin", "--newline", *e).stdout == b"\xff\xfe\x01\n"
    shown = orjson.loads(kvnode("get", "cli/bin", "--json", *e).stdout)
    assert shown["value_base64"] == base64.b64encode(b"\xff\xfe\x01").decode()
    assert kvnode("put", "cli/bin", *e, stdin=b"\x00\xff").returncode == 0
    assert kvnode("get", "cli/bin", *e).stdout == b"\x00\xff"
    assert kvnode("put", "cli/bin", *e, stdin=b"\xff\x01").returncode == 0
    swapped = subprocess.run(
        [sys.executable, "-m", "kvnode", "cas", "cli/bin", "t", "--prev-value", b"\xff\x01", *e],
        capture_output=True,
        timeout=30,
    )
    assert swapped.returncode == 0, swapped.stderr  # compared with the exact bytes given
    assert kvnode("get", "cli/bin", *e).stdout == b"t\n"
    assert kvnode("get", "cli/bin", "--no-newline", *e).stdout == b"t"
    bad_key = subprocess.run(
        [sys.executable, "-m", "kvnode", "put", b"cli/\xff", "v", *e],
        capture_output=True,
        timeout=30,
    )
    assert bad_key.returncode == 2 and b"must be UTF-8 text" in bad_key.stderr, bad_key.stderr
    assert b"Traceback" not in bad_key.stderr


def test_status_shows_one_leader(endpoints: str) -> None:
    result = kvnode("status", "--json", "--endpoints", endpoints)
    statuses = orjson.loads(result.stdout)
    assert sorted(s["role"] for s in statuses.values()) == ["follower", "follower", "leader"]
    table = kvnode("status", "--endpoints", endpoints).stdout.decode()
    assert "leader" in table and "follower" in table


def test_cas_needs_exactly_one_condition(endpoints: str) -> None:
    result = kvnode("cas", "k", "v", "--endpoints", endpoints)
    assert result.returncode == 2 and b"exactly one" in result.stderr


def test_unreachable_endpoints_are_one_line_errors() -> None:
    (port,) = free_ports(1)
    result = kvnode("get", "x", "--endpoints", f"127.0.0.1:{port}", "--timeout", "2")
    assert result.returncode == 1
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr
    said = result.stderr.decode()
    assert f"tried http://127.0.0.1:{port}" in said and "connection refused" in said, said
    assert "ClientConnectorError" not in said


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, b"does not exist"),
        ('node_id = "a"\ncolour = "blue"\n', b"unknown key 'colour'"),
        ('peers = ["127.0.0.1"]\ncluster_secret = "s"\n', b"not a host:port address"),
        ('fsync = "sometimes"\n', b"fsync"),
        ('peers = ["127.0.0.1:4999"]\n', b"cluster_secret"),
        ("this is = not toml =\n", b"not valid TOML"),
    ],
)
def test_bad_config_is_one_line_and_exit_code_2(
    tmp_path: Path, config: str | None, message: bytes
) -> None:
    path = tmp_path / "node.toml"
    if config is not None:
        write(path, config + f'data_dir = "{tmp_path / "d"}"\n')
    result = kvnode("serve", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr


def test_port_in_use_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (raft,) = free_ports(1)
        result = kvnode(
            "serve",
            "--http-addr",
            f"127.0.0.1:{port}",
            "--raft-addr",
            f"127.0.0.1:{raft}",
            "--data-dir",
            str(tmp_path / "d"),
        )
    assert result.returncode == 2
    assert b"http_addr: cannot listen on" in result.stderr and b"Traceback" not in result.stderr


def serve_on_free_ports(data_dir: Path) -> subprocess.CompletedProcess[bytes]:
    """`kvnode serve` on `data_dir`, for a node that is expected to refuse to start."""
    http, raft = free_ports(2)
    return kvnode(
        "serve",
        "--http-addr",
        f"127.0.0.1:{http}",
        "--raft-addr",
        f"127.0.0.1:{raft}",
        "--data-dir",
        str(data_dir),
    )


def test_a_foreign_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "thesis.tex").write_text("...")
    result = serve_on_free_ports(tmp_path / "d")
    assert result.returncode == 3 and b"not a kvnode data directory" in result.stderr


def test_a_data_dir_a_running_node_holds_is_refused(tmp_path: Path) -> None:
    local = make_cluster(tmp_path / "c")
    try:
        running = local.nodes[0]
        assert running.process is not None
        result = serve_on_free_ports(running.data_dir)
        assert result.returncode == 3, result.stderr
        assert f"in use by process {running.process.pid}".encode() in result.stderr
        assert b"Traceback" not in result.stderr
    finally:
        local.stop_all()


def test_raft_files_that_no_longer_fit_together_are_refused(tmp_path: Path) -> None:
    """A node whose Raft snapshot or journal was deleted stops at once, naming the file,
    instead of leading with a log it cannot apply or forgetting what it acknowledged."""
    local = make_cluster(tmp_path / "c", snapshot_entries=50)
    try:

        async def compact_node0() -> None:
            async with Client(local.urls, token=local.token) as client:
                for i in range(150):  # one entry each: the log passes snapshot_entries
                    await client.put(f"k{i}", b"v")

                async def compacted() -> bool:
                    status = (await local.statuses(client))[0]
                    return int(status["snapshots_written"]) >= 1

                await wait_until(compacted, 60, "node1 to compact its log")

        asyncio.run(compact_node0())
    finally:
        local.stop_all()
    node_dir, config = local.nodes[0].data_dir, local.nodes[0].config_path
    assert stat.S_IMODE(node_dir.stat().st_mode) == 0o700, "the data directory is private"
    for private in (node_dir / "raft.journal", node_dir / "sm", node_dir / "sm" / "wal.log"):
        assert stat.S_IMODE(private.stat().st_mode) & 0o077 == 0, private
    for missing, says in (
        (RAFT_SNAPSHOT, b"missing while raft.journal starts at entry"),
        (RAFT_JOURNAL, b"missing while raft.meta exists"),
    ):
        broken = tmp_path / f"without-{missing}"
        shutil.copytree(node_dir, broken)
        (broken / missing).unlink()
        # Its own config (secret, peers) on a copy of its directory; its ports are free.
        result = kvnode("serve", "--config", str(config), "--data-dir", str(broken))
        assert result.returncode == 3, result.stderr
        assert missing.encode() in result.stderr and says in result.stderr, result.stderr
        assert b"Traceback" not in result.stderr


def test_cluster_up_is_ready_quickly_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    started = time.monotonic()
    with ClusterUp(tmp_path) as up:
        elapsed = time.monotonic() - started
        assert up.output().startswith("kvnode cluster of 3 is up; leader is node")
        assert elapsed < 10, f"cluster up took {elapsed:.1f} s"
        assert len(up.track_children()) == 3, up.diagnostics()
        result = kvnode("put", "k", "v", "--endpoints", up.endpoints)
        assert result.returncode == 0
        assert up.interrupt() == 0
        assert not [pid for pid in up.node_pids if alive(pid)]


def test_version_is_the_installed_one() -> None:
    result = kvnode("--version")
    assert result.returncode == 0
    assert result.stdout.decode().split() == ["kvnode", importlib.metadata.version("kvnode")]


def test_invalid_flag_value_is_a_usage_error() -> None:
    result = kvnode("serve", "--fsync", "sometimes")
    assert result.returncode == 2 and b"Invalid value for '--fsync'" in result.stderr


def test_chaos_check_judges_a_saved_history_again(tmp_path: Path) -> None:
    def op(op_id: int, kind: str, start: float, value: str) -> Op:
        result = "applied" if kind == "put" else None
        return Op(
            op_id, 0, kind, "k", value, invoke=start, complete=start + 1, outcome=OK, result=result
        )

    legal = [op(1, "put", 0, "a"), op(2, "get", 2, "a")]
    stale = [*legal, op(3, "put", 4, "b"), op(4, "get", 6, "a")]
    final_read = Op(5, FINAL_READER, "get", "k", None, invoke=8, complete=9, outcome=OK)
    lost = [*legal, final_read]
    for name, history in (("legal", legal), ("stale", stale), ("lost", lost)):
        saved = tmp_path / f"{name}.json"
        saved.write_bytes(orjson.dumps([item.to_json() for item in history]))
        checked = kvnode("chaos", "--check", str(saved))
        expected = (0, b"VERDICT: valid") if name == "legal" else (1, b"VERDICT: INVALID")
        assert name != "lost" or b"lost: #1" in checked.stdout
        assert (checked.returncode, expected[1] in checked.stdout) == (expected[0], True)
    (tmp_path / "junk.json").write_text('{"not": "a history"}')
    junk = kvnode("chaos", "--check", str(tmp_path / "junk.json"))
    assert junk.returncode == 2
    assert b"not a history saved by" in junk.stderr and b"Traceback" not in junk.stderr


def test_list_pages_through_every_key_counts_and_deletes_a_range(
    endpoints: str, tmp_path: Path
) -> None:
    """More keys than one page: `list` shows them all, `--limit` says how many it left
    out, `--count` counts, `delete --prefix --end` deletes a range at one revision."""
    e = ("--endpoints", endpoints)
    lines = (orjson.dumps({"key": f"big/{i:04d}", "value": "v"}) for i in range(1536))
    dump = tmp_path / "big.jsonl"
    dump.write_bytes(b"\n".join(lines) + b"\n")
    assert kvnode("import", str(dump), *e, timeout=120).returncode == 0
    every = kvnode("list", "--prefix", "big/", "--keys-only", *e)
    assert every.stdout.decode().split() == [f"big/{i:04d}" for i in range(1536)]
    assert kvnode("list", "--prefix", "big/", "--count", *e).stdout == b"1536\n"
    capped = kvnode("list", "--prefix", "big/", "--limit", "10", "--keys-only", *e)
    assert len(capped.stdout.split()) == 10 and b"1526 more keys not shown" in capped.stderr
    ranged = kvnode("list", "--prefix", "big/", "--end", "big/0003", "--json", *e)
    assert [i["key"] for i in orjson.loads(ranged.stdout)] == ["big/0000", "big/0001", "big/0002"]
    gone = kvnode("delete", "--prefix", "big/", "--end", "big/0100", *e)
    assert gone.returncode == 0 and gone.stdout.startswith(b"deleted 100 keys under 'big/'")
    assert kvnode("list", "--prefix", "big/", "--count", *e).stdout == b"1436\n"
    neither = kvnode("delete", *e)
    assert neither.returncode == 2 and b"give a KEY or --prefix" in neither.stderr
    everything = kvnode("delete", "--prefix", "", *e)
    assert everything.returncode == 2 and b"would delete every key" in everything.stderr
    assert kvnode("delete", "--prefix", "big/", *e).stdout.startswith(b"deleted 1436 keys")


def test_bench_report_draws_the_run(endpoints: str, tmp_path: Path) -> None:
    report = tmp_path / "bench"
    ran = kvnode(
        "bench",
        *("--endpoints", endpoints, "--duration", "1", "--warmup", "0.2"),
        *("--connections", "2", "--report", str(report)),
    )
    assert ran.returncode == 0, ran.stderr
    summary = orjson.loads((report / "summary.json").read_bytes())
    page = (report / "index.html").read_text()
    assert summary["ok"] > 0 and f"{summary['ops_per_s']} ops/s" in page
    assert 'id="latency-curve"' in page and 'id="throughput"' in page
