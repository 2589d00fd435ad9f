"""Runs one node: the service, its HTTP API and the TTL sweeper, until SIGTERM or SIGINT.

Shutdown is clean: open watches are told the node is stopping, the HTTP
listener closes, then Raft stops, then the state machine is synced and closed
(its WAL is kept, so the restarted node can serve watches from those revisions).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import socket
from pathlib import Path

from aiohttp import web

from kvnode.config import ConfigError, NodeConfig, split_address
from kvnode.consensus import Indeterminate, Unavailable
from kvnode.http.guard import check_aiohttp_version
from kvnode.http.listener import start_listener
from kvnode.raft.consensus import RaftConsensus
from kvnode.raft.voters import with_known_voters
from kvnode.service import KvService
from kvnode.service.join import join_cluster
from kvnode.storage.dir_lock import lock_data_dir
from kvnode.thread_names import HTTP_THREAD, name_os_thread
from kvnode.tls import server_context

log = logging.getLogger(__name__)

# Descriptors kept back from HTTP clients for the journal, WAL, checkpoints, snapshots and
# peer connections: a flood of clients must never make a storage write fail.
STORAGE_FD_RESERVE = 256
MIN_HTTP_CONNECTIONS = 16


def http_connection_limit(configured: int) -> int:
    """The HTTP connection cap: as configured, or (0) what the open-file limit allows after
    the storage reserve. Raises the soft open-file limit to the hard one first."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    available = soft - STORAGE_FD_RESERVE if soft != resource.RLIM_INFINITY else 1 << 20
    if configured:
        if configured > available:
            raise ConfigError(
                f"max_http_connections: {configured} leaves fewer than {STORAGE_FD_RESERVE}"
                f" of the {soft} open files this process may have for storage"
            )
        return configured
    return max(MIN_HTTP_CONNECTIONS, available)


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
    name_os_thread(HTTP_THREAD)
    check_aiohttp_version()
    ensure_port_free(config.raft_addr, "raft_addr")
    ensure_port_free(config.http_addr, "http_addr")
    data_lock = lock_data_dir(Path(config.data_dir))
    try:
        await _serve_locked(config)
    finally:
        os.close(data_lock)  # after every writer of this process has stopped


async def _serve_locked(config: NodeConfig) -> None:
    config = with_known_voters(config)
    if config.join:
        config = await join_cluster(config)
    max_connections = http_connection_limit(config.max_http_connections)
    tls = server_context(config)
    service = KvService(config, RaftConsensus)
    # The state just loaded lives as long as the process: keep the cyclic GC from walking
    # it again and again (a full pass over millions of objects stalls every thread).
    gc.collect()
    gc.freeze()

    runner: web.AppRunner | None = None
    sweeper: asyncio.Task[None] | None = None
    publisher: asyncio.Task[None] | None = None
    try:
        runner = await start_listener(service, config, tls=tls, max_connections=max_connections)
        log.info(
            "serving %s on %s (at most %d connections), Raft on %s, peers %s, data in %s"
            " (fsync=%s)",
            "HTTP" if tls is None else "HTTPS" + (" (mutual TLS)" if tls.verify_mode else ""),
            config.http_addr,
            max_connections,
            config.raft_addr if config.peers or config.cluster_secret else "no port (alone)",
            ", ".join(config.peers) or "none",
            config.data_dir,
            config.fsync,
        )
        sweeper = asyncio.create_task(service.expire_keys_forever())
        publisher = asyncio.create_task(service.membership.publish_forever())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        # The node's own proposals stop first: a leader busy expiring keys would keep
        # running ahead of the follower it wants to hand over to.
        await _end_tasks(sweeper, publisher)
        await hand_over_if_leading(service, config)
    finally:
        await _end_tasks(sweeper, publisher)
        if runner is not None:
            await runner.cleanup()
        service.close()
        log.info("stopped cleanly")


async def _end_tasks(*tasks: asyncio.Task[None] | None) -> None:
    for task in tasks:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def hand_over_if_leading(service: KvService, config: NodeConfig) -> None:
    """A leader that is stopped on purpose first asks its most caught-up follower to take
    over (Raft's TimeoutNow), so writes pause for a round trip, not for an election
    timeout. Bounded: a stop waits at most `request_timeout` for it."""
    if not config.peers or not service.consensus.is_leader():
        return
    try:
        await asyncio.wait_for(service.consensus.hand_over_leadership(), config.request_timeout)
    except Unavailable as exc:
        log.info("stopping without handing leadership over (%s)", exc.reason)
        return
    except (Indeterminate, TimeoutError):
        log.info("stopping without handing leadership over (no answer in time)")
        return
    log.info("handed leadership over before stopping")
