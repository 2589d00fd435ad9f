"""HTTPS and mutual TLS for clients, with a CA made at test time: the client and the CLI
talk to a TLS node when they trust its CA (and present a certificate when it asks for
one), and get a clear error otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kvnode.client import Client, KvError
from kvnode.client.tls import client_context
from kvnode.cluster.supervisor import free_ports
from tests.integration.cli_processes import kvnode
from tests.pki import issue
from tests.waiting import wait_until


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, in `directory`."""
    ca = issue(directory, "ca", None)
    issue(directory, "server", ca, usage="server")
    issue(directory, "client", ca, usage="client")
    return Pki(
        *(directory / f for f in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key"))
    )


@contextlib.contextmanager
def serve_tls(
    tmp_path: Path, pki: Pki, *, mutual: bool, env: dict[str, str] | None = None
) -> Iterator[str]:
    """One `kvnode serve` with HTTPS (and client certificates when `mutual`), with more
    settings in `env` if given."""
    http, raft = free_ports(2)
    args = [
        "serve",
        *("--http-addr", f"127.0.0.1:{http}", "--raft-addr", f"127.0.0.1:{raft}"),
        *("--data-dir", str(tmp_path / "node")),
    ]
    env_args = {
        "KVNODE_TLS_CERT_FILE": str(pki.server_cert),
        "KVNODE_TLS_KEY_FILE": str(pki.server_key),
        "KVNODE_TLS_CLIENT_CA_FILE": str(pki.ca) if mutual else "",
        **(env or {}),
    }
    node = subprocess.Popen(
        [sys.executable, "-m", "kvnode", *args],
        env={**os.environ, **env_args},
        stderr=subprocess.PIPE,
    )
    try:
        yield f"127.0.0.1:{http}"
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=30)


async def ready(endpoint: str, pki: Pki, *, with_cert: bool) -> None:
    tls = client_context(
        str(pki.ca), *((str(pki.client_cert), str(pki.client_key)) if with_cert else ())
    )
    async with Client([endpoint], timeout=2, tls=tls) as client:

        async def up() -> bool:
            try:
                await client.request("GET", "/ready", idempotent=True)
                return True
            except KvError:
                return False

        await wait_until(up, 30, "the TLS node to be ready")


def test_https_needs_the_ca_and_serves_the_api(tmp_path: Path, pki: Pki) -> None:
    with serve_tls(tmp_path, pki, mutual=False) as endpoint:
        asyncio.run(ready(endpoint, pki, with_cert=False))
        put = kvnode("put", "secure", "yes", "--cacert", str(pki.ca), "--endpoints", endpoint)
        assert put.returncode == 0, put.stderr
        got = kvnode("get", "secure", "--cacert", str(pki.ca), "--endpoints", endpoint)
        assert got.stdout == b"yes\n"
        plain = kvnode("get", "secure", "--endpoints", endpoint, "--timeout", "2")
        assert plain.returncode == 1 and b"Traceback" not in plain.stderr
        untrusted = asyncio.run(get_without_the_ca(endpoint))
        assert "certificate" in untrusted.lower() or "ssl" in untrusted.lower(), untrusted


async def get_without_the_ca(endpoint: str) -> str:
    async with Client([endpoint], timeout=2, tls=client_context()) as client:
        try:
            await client.get("secure")
        except KvError as exc:
            return str(exc)
    raise AssertionError("a node with an untrusted certificate was believed")


def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path: Path, pki: Pki) -> None:
    with serve_tls(tmp_path, pki, mutual=True) as endpoint:
        asyncio.run(ready(endpoint, pki, with_cert=True))
        tls = ("--cacert", str(pki.ca), "--endpoints", endpoint, "--timeout", "2")
        # A read: a write refused this way may be reported as of unknown outcome (exit 9),
        # since under TLS 1.3 the refusal comes after the request went out.
        refused = kvnode("get", "m", *tls)
        assert refused.returncode == 1 and b"Traceback" not in refused.stderr
        mine = ("--cert", str(pki.client_cert), "--key", str(pki.client_key))
        accepted = kvnode("put", "m", "1", *tls, *mine)
        assert accepted.returncode == 0, accepted.stderr
        a_node_s = ("--cert", str(pki.server_cert), "--key", str(pki.server_key))
        posing = kvnode("get", "m", *tls, *a_node_s)
        assert posing.returncode == 1, "a server certificate passed as a client's"
        assert b"Traceback" not in posing.stderr


def test_half_a_tls_configuration_is_refused_at_startup(tmp_path: Path, pki: Pki) -> None:
    (http, raft) = free_ports(2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvnode",
            "serve",
            *("--http-addr", f"127.0.0.1:{http}", "--raft-addr", f"127.0.0.1:{raft}"),
            *("--data-dir", str(tmp_path / "d")),
        ],
        env={"KVNODE_TLS_CERT_FILE": str(pki.server_cert), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"tls_cert_file and tls_key_file" in result.stderr


def test_a_stalled_tls_handshake_is_cut_off_at_the_header_timeout(tmp_path: Path, pki: Pki) -> None:
    """asyncio waits 60 s for a TLS handshake by default; a node gives it header_timeout."""
    with serve_tls(tmp_path, pki, mutual=False, env={"KVNODE_HEADER_TIMEOUT": "1"}) as endpoint:
        asyncio.run(ready(endpoint, pki, with_cert=False))
        host, port = endpoint.split(":")
        # Closed long before asyncio's 60 s: recv would time out after 10 s otherwise.
        with socket.create_connection((host, int(port)), timeout=10) as stalled:
            assert stalled.recv(1) == b"", "the node sent something to a silent client"
