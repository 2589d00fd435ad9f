"""The client's side of HTTPS: a context that trusts a given CA and may present a
certificate (mutual TLS). It lives with the client, apart from the node's side in
kvnode.tls, so a client-only install needs nothing beyond the standard library for it."""

from __future__ import annotations

import ssl


def client_context(
    cacert: str | None = None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A client context that trusts `cacert` (else the system's CAs) and presents `cert`."""
    context = ssl.create_default_context(cafile=cacert)
    if cert:
        context.load_cert_chain(cert, key)
    return context
