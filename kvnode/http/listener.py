"""A node's HTTP listener: the application, the lean single-key path and the guard's
defences on one socket (TCP, or TLS). The node starts it, and so do the HTTP contract
tests, so they speak to the path that really serves each route."""

from __future__ import annotations

import ssl

from kvnode.config import NodeConfig
from kvnode.http.app import METRICS, create_app
from kvnode.http.guard import GuardedAppRunner, GuardedTCPSite
from kvnode.http.lean import LeanKvPath
from kvnode.service import Service


async def start_listener(
    service: Service,
    config: NodeConfig,
    *,
    tls: ssl.SSLContext | None,
    max_connections: int,
    port: int | None = None,
) -> GuardedAppRunner:
    """Listen on `config.http_addr`, or on `port` of its host (0: any free one, which
    `runner.addresses` tells). The caller ends it with `runner.cleanup()`."""
    app = create_app(service)
    runner = GuardedAppRunner(
        app,
        header_timeout=config.header_timeout,
        max_connections=max_connections,
        node_headers=service.node_headers,
        lean=LeanKvPath(service, app[METRICS]),
        access_log=None,
        handle_signals=False,
    )
    await runner.setup()
    host, configured_port = config.http_host_port
    site = GuardedTCPSite(
        runner,
        host,
        configured_port if port is None else port,
        reuse_address=True,
        ssl_context=tls,
        handshake_timeout=config.header_timeout,
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
