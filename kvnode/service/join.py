"""`kvnode serve --join URL`: a new node asks a running cluster to add it, then starts.

The node sends `POST /cluster/members` with its Raft address, URL and id to
`URL` (following the answer to the leader), and once it is a voter starts with
the cluster's voters as its peers, as a replacement would (`initial_state =
"existing"`): it neither votes nor stands until it holds the leader's log, which
it gets as a snapshot plus the log tail. Its Raft node saves those voters to
`raft.members` (raft/voters.py) at its first tick, so a node whose data
directory already names its voters has joined before and starts normally; one
whose earlier attempt was added but stopped before that tick finds itself
already a member and carries on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from pathlib import Path
from typing import Any

from kvnode.client import Client, Indeterminate, KvError, Unavailable
from kvnode.client.tls import client_context
from kvnode.config import ConfigError, NodeConfig
from kvnode.storage.layout import prepare_node_dir

log = logging.getLogger(__name__)

JOIN_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 15.0
RETRY_SECONDS = 1.0


class JoinRefused(ConfigError):
    """The cluster said no (or could not be reached in time): the node does not start."""


async def join_cluster(config: NodeConfig) -> NodeConfig:
    """Become a voter of the cluster at `config.join`; `config` as this node now runs."""
    prepare_node_dir(Path(config.data_dir))
    deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
    async with Client(
        [config.join],
        timeout=REQUEST_TIMEOUT_SECONDS,
        token=config.auth_token or None,
        tls=_tls(config),
    ) as client:
        while True:
            try:
                members = await _ask(client, config)
                break
            except _TryAgain as exc:
                if time.monotonic() > deadline:
                    raise JoinRefused(
                        f"join: {config.join} did not add this node within"
                        f" {JOIN_TIMEOUT_SECONDS:g} s: {exc}"
                    ) from None
                log.info("join: %s; retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
    voters = sorted({config.raft_addr, *(m["raft_addr"] for m in members)})
    log.info("joined the cluster; its voters are %s", ", ".join(voters))
    peers = tuple(v for v in voters if v != config.raft_addr)
    return dataclasses.replace(config, peers=peers, join="", initial_state="existing")


class _TryAgain(Exception):
    """No answer yet that settles it (unreachable, no leader, a change in progress)."""


async def _ask(client: Client, config: NodeConfig) -> list[dict[str, Any]]:
    """One `POST /cluster/members` (the client follows a follower's 307 to the leader)."""
    try:
        reply = await client.member_add(config.raft_addr, config.client_url, config.node_id)
    except (Unavailable, Indeterminate) as exc:
        raise _TryAgain(str(exc)) from None
    except KvError as exc:
        member = exc.body.get("member", {})
        if (
            exc.code == "member_exists"
            and member.get("raft_addr") == config.raft_addr
            and member.get("http_url") in (None, config.client_url)
        ):
            return list(exc.body["members"])  # added by an earlier attempt
        if exc.code == "membership_change_in_progress":
            raise _TryAgain(str(exc)) from None
        raise JoinRefused(f"join: {config.join} refused: {exc}") from None
    return list(reply["members"])


def _tls(config: NodeConfig) -> ssl.SSLContext | None:
    """For an https cluster: trust the CA this node trusts its own clients with (else the
    system's), and present this node's certificate."""
    if not config.join.startswith("https://"):
        return None
    return client_context(
        config.tls_client_ca_file or None, config.tls_cert_file or None, config.tls_key_file or None
    )
