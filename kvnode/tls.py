"""HTTPS for the client API: the server's TLS context (optionally requiring client
certificates, i.e. mutual TLS) and the client's (trusting a given CA, presenting a
certificate). Peer traffic has its own protection (cluster_secret); this is HTTP only."""

from __future__ import annotations

import datetime
import logging
import ssl
from pathlib import Path

from cryptography import x509

from kvnode.config import ConfigError, NodeConfig

log = logging.getLogger(__name__)


def server_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The node's TLS context, or None when it serves plain HTTP. Unreadable or mismatched
    files are a ConfigError (one line at startup), not a traceback."""
    if not config.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
        if config.tls_client_ca_file:
            context.load_verify_locations(cafile=config.tls_client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"tls: cannot use the certificate files: {exc}") from None
    warn_if_out_of_date(Path(config.tls_cert_file))
    return context


def warn_if_out_of_date(cert_file: Path) -> None:
    """A node serves with the certificate it is given, but every client will refuse one
    that has expired (or is not valid yet): say so at start, not at the first handshake."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return  # ssl took it, in a form this does not read: nothing more to say
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        log.warning(
            "tls_cert_file %s expired on %s: clients will refuse this node",
            cert_file,
            cert.not_valid_after_utc.isoformat(),
        )
    elif cert.not_valid_before_utc > now:
        log.warning(
            "tls_cert_file %s is not valid before %s: clients will refuse this node until then",
            cert_file,
            cert.not_valid_before_utc.isoformat(),
        )


def client_context(
    cacert: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A client context that trusts `cacert` (else the system's CAs) and presents `cert`."""
    context = ssl.create_default_context(cafile=cacert)
    if cert:
        context.load_cert_chain(cert, key)
    return context
