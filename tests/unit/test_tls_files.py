"""A node told to serve with an expired certificate, or (under mutual TLS) with one that
would also pass as a client's, says so at start."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest

from kvnode.config import NodeConfig
from kvnode.tls import server_context
from tests.pki import issue


@pytest.mark.parametrize(
    ("valid_for", "warned"),
    [(datetime.timedelta(days=-1), "expired on"), (datetime.timedelta(days=1), None)],
)
def test_an_expired_server_certificate_is_reported_at_start(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    valid_for: datetime.timedelta,
    warned: str | None,
) -> None:
    ca = issue(tmp_path, "ca", None)
    issue(tmp_path, "server", ca, valid_for=valid_for)
    config = NodeConfig(
        tls_cert_file=str(tmp_path / "server.crt"), tls_key_file=str(tmp_path / "server.key")
    )
    with caplog.at_level(logging.WARNING, logger="kvnode.tls"):
        assert server_context(config) is not None  # it still serves
    said = [record.getMessage() for record in caplog.records]
    assert (warned is None and not said) or (len(said) == 1 and warned in said[0]), said


@pytest.mark.parametrize(
    ("usage", "warned"),
    [(None, "names no extended key usage"), ("client", "names clientAuth"), ("server", None)],
)
def test_a_server_certificate_fit_for_clients_is_reported_under_mutual_tls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, usage: str | None, warned: str | None
) -> None:
    """OpenSSL checks a client certificate's purpose only when it names one."""
    ca = issue(tmp_path, "ca", None)
    issue(tmp_path, "server", ca, usage=usage)
    config = NodeConfig(
        tls_cert_file=str(tmp_path / "server.crt"),
        tls_key_file=str(tmp_path / "server.key"),
        tls_client_ca_file=str(tmp_path / "ca.crt"),
    )
    with caplog.at_level(logging.WARNING, logger="kvnode.tls"):
        assert server_context(config) is not None
    said = [record.getMessage() for record in caplog.records]
    assert (warned is None and not said) or (len(said) == 1 and warned in said[0]), said
