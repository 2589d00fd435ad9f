"""HTTPS for the client API, the node's side: the server's TLS context (optionally
requiring client certificates, i.e. mutual TLS) and warnings about its certificate. The
client's side is kvnode.client.tls. Peer traffic has its own protection (cluster_secret);
this is HTTP only."""

from __future__ import annotations

import datetime
import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

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
    cert = read_certificate(Path(config.tls_cert_file))
    if cert is not None:
        warn_if_out_of_date(Path(config.tls_cert_file), cert)
        if config.tls_client_ca_file:
            warn_if_fit_for_clients(Path(config.tls_cert_file), cert)
    return context


def read_certificate(cert_file: Path) -> x509.Certificate | None:
    """The first certificate of the file, or None if ssl took it in a form this does not
    read (nothing more to say about it then)."""
    try:
        return x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return None


def warn_if_fit_for_clients(cert_file: Path, cert: x509.Certificate) -> None:
    """With mutual TLS, a client certificate is checked for its purpose only when it names
    one (extended key usage, as in OpenSSL and Go): a certificate that names none, or
    names clientAuth, is accepted from a client. If the node's own certificate is such,
    every node's certificate likely is, and anyone holding one passes as a client."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        fit = "names no extended key usage"
    else:
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            return
        fit = "names clientAuth among its extended key usages"
    log.warning(
        "tls_cert_file %s %s, so with tls_client_ca_file it would also be accepted as a"
        " client certificate: issue server certificates with extendedKeyUsage=serverAuth"
        " only, and client certificates with clientAuth",
        cert_file,
        fit,
    )


def warn_if_out_of_date(cert_file: Path, cert: x509.Certificate) -> None:
    """A node serves with the certificate it is given, but every client will refuse one
    that has expired (or is not valid yet): say so at start, not at the first handshake."""
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
