"""`pip install kvnode` without the `server` extra is a working client: none of the node's
packages (PySyncObj, protobuf, ...) is installed, the CLI's key commands and the Python
client talk to a real cluster, and a command that needs a node's code says which extra to
install instead of ending in a traceback."""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from kvnode.cli.common import EXIT_CONFIG, SERVER_MODULES
from tests.install.fresh import LOCK, new_venv, pip_install, source_copy
from tests.integration.conftest import assert_clean_logs, make_cluster

pytestmark = pytest.mark.slow

SERVER_DISTRIBUTIONS = {"pysyncobj", "protobuf", "sortedcontainers", "prometheus-client"}
SERVER_DISTRIBUTIONS |= {"cryptography", "uvloop"}
NAME = re.compile(r"[A-Za-z0-9_.-]+")


def normal(requirement: str) -> str:
    """The distribution a requirement names, as pip normalises it (PEP 503, roughly)."""
    name = NAME.match(requirement)
    assert name, requirement
    return name.group().lower().replace("_", "-")


def installed(python: Path) -> set[str]:
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    )
    return {normal(line) for line in listed.stdout.split()}


def test_the_server_extra_is_what_the_client_install_leaves_out() -> None:
    """The test's list of the node's packages is the `server` extra of the metadata, and
    the CLI's list of their modules (cli/common.py SERVER_MODULES) names them all."""
    extra = {
        normal(requirement)
        for requirement in metadata.requires("kvnode") or []
        if 'extra == "server"' in requirement
    }
    assert extra == SERVER_DISTRIBUTIONS
    distributions = metadata.packages_distributions()
    of_modules = {normal(name) for module in SERVER_MODULES for name in distributions[module]}
    assert of_modules == SERVER_DISTRIBUTIONS


def test_a_client_only_install_talks_to_a_cluster(tmp_path: Path) -> None:
    python = new_venv(tmp_path / "venv")
    tooling = pip_install(python, "--constraint", str(LOCK), "setuptools")
    assert tooling.returncode == 0, tooling.stderr[-3000:]
    built = pip_install(
        python, "--no-build-isolation", "--constraint", str(LOCK), str(source_copy(tmp_path))
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert not installed(python) & SERVER_DISTRIBUTIONS
    kvnode = python.parent / "kvnode"

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kvnode, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
        )

    refused = run("serve", "--data-dir", str(tmp_path / "node"))
    assert refused.returncode == EXIT_CONFIG, refused.stderr
    assert "pip install 'kvnode[server]'" in refused.stderr
    assert "Traceback" not in refused.stderr

    local = make_cluster(tmp_path / "cluster")
    try:
        endpoints = ",".join(local.urls)
        env = {"KVNODE_ENDPOINTS": endpoints, "PATH": str(python.parent)}
        assert run("put", "client/k", "from the client", env=env).returncode == 0
        got = run("get", "client/k", env=env)
        assert got.returncode == 0 and got.stdout == "from the client\n", got.stderr
        probe = (
            "import sys; from kvnode.client import SyncClient;"
            " client = SyncClient(sys.argv[1].split(','), timeout=10);"
            " print([(i.key, i.value) for i in client.list('client/', values=True)]);"
            " client.close()"
        )
        listed = subprocess.run([python, "-c", probe, endpoints], capture_output=True, text=True)
        assert listed.stdout.strip() == "[('client/k', b'from the client')]", listed.stderr
    finally:
        local.stop_all()
    assert_clean_logs(local)
