"""Runs one node: the replica, its HTTP API and the TTL sweeper, until SIGTERM or SIGINT.

Shutdown is clean: the HTTP listener closes first, then Raft stops, then the
state machine takes a final checkpoint, so the next start replays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket

from aiohttp import web

from kvnode.api import create_app
from kvnode.config import ConfigError, NodeConfig, split_address
from kvnode.raft.replica import Replica

log = logging.getLogger(__name__)


def ensure_port_free(address: str, key: str) -> None:
    """Fail fast with a clear message; PySyncObj would otherwise retry binding silently."""
    host, port = split_address(address, key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"{key}: cannot listen on {address}: {exc.strerror}") from None


async def serve(config: NodeConfig) -> None:
    ensure_port_free(config.raft_addr, "raft_addr")
    ensure_port_free(config.http_addr, "http_addr")
    replica = Replica(config)
    runner = web.AppRunner(
        create_app(replica, body_timeout=config.body_timeout), access_log=None, handle_signals=False
    )
    sweeper: asyncio.Task | None = None
    try:
        await runner.setup()
        host, port = config.http_host_port
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        log.info(
            "serving HTTP on %s, Raft on %s, peers %s, data in %s (fsync=%s)",
            config.http_addr,
            config.raft_addr,
            ", ".join(config.peers) or "none",
            config.data_dir,
            config.fsync,
        )
        sweeper = asyncio.create_task(replica.expire_keys_forever())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await runner.cleanup()
        replica.close()
        log.info("stopped cleanly")
