"""One process per data directory: a live holder is refused, a dead node's forked writer
is waited for (it still renames its file into place after the kill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kvnode.storage.dir_lock import lock_data_dir
from kvnode.storage.errors import NotKvnodeFile, StorageFailure
from kvnode.storage.layout import DATA_DIR_LOCK

# Takes the lock, forks a writer that inherits it and blocks on stdin, prints both pids.
HOLDER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from kvnode.storage.dir_lock import lock_data_dir
    lock_data_dir(Path(sys.argv[1]))
    writer = os.fork()
    if writer == 0:
        sys.stdin.read()  # until the test closes the pipe
        os._exit(0)
    print(os.getpid(), writer, flush=True)
    sys.stdin.read()
    """
)


def start_holder(data_dir: Path) -> tuple[subprocess.Popen[str], int, int]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    node_pid, writer_pid = map(int, holder.stdout.readline().split())
    return holder, node_pid, writer_pid


def test_a_free_directory_is_locked_with_the_pid_inside(tmp_path: Path) -> None:
    descriptor = lock_data_dir(tmp_path / "node")
    try:
        assert (tmp_path / "node" / DATA_DIR_LOCK).read_text() == f"{os.getpid()}\n"
    finally:
        os.close(descriptor)


def test_a_directory_a_live_node_holds_is_refused_naming_it(tmp_path: Path) -> None:
    holder, node_pid, _writer = start_holder(tmp_path)
    try:
        with pytest.raises(StorageFailure, match=f"in use by process {node_pid}"):
            lock_data_dir(tmp_path, writer_wait=0)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()


def test_a_killed_nodes_writer_is_waited_for_then_the_lock_is_taken(tmp_path: Path) -> None:
    holder, node_pid, _writer = start_holder(tmp_path)
    os.kill(node_pid, signal.SIGKILL)
    holder.wait()
    # The writer outlives its node and still holds the lock: not a live node, so wait.
    with pytest.raises(StorageFailure, match=f"writer of process {node_pid}"):
        lock_data_dir(tmp_path, writer_wait=0)
    assert holder.stdin is not None
    holder.stdin.close()  # the writer finishes
    descriptor = lock_data_dir(tmp_path, writer_wait=60)
    os.close(descriptor)


def test_a_foreign_directory_gets_no_lock_file(tmp_path: Path) -> None:
    (tmp_path / "photos.jpg").write_bytes(b"x")
    with pytest.raises(NotKvnodeFile, match="not a kvnode data directory"):
        lock_data_dir(tmp_path)
    assert not (tmp_path / DATA_DIR_LOCK).exists()
