"""HTTPS for the client API: the server's TLS context (optionally requiring client
certificates, i.e. mutual TLS) and the client's (trusting a given CA, presenting a
certificate). Peer traffic has its own protection (cluster_secret); this is HTTP only."""

from __future__ import annotations

import ssl

from kvnode.config import ConfigError, NodeConfig


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
    return context


def client_context(
    cacert: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A client context that trusts `cacert` (else the system's CAs) and presents `cert`."""
    context = ssl.create_default_context(cafile=cacert)
    if cert:
        context.load_cert_chain(cert, key)
    return context
