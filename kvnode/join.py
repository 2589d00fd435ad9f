"""`kvnode serve --join URL`: a new node asks a running cluster to add it, then starts.

The node sends `POST /cluster/members` with its Raft address, URL and id to
`URL` (following the answer to the leader), and once it is a voter saves the
cluster's voters to `raft.members` (voters.py) and starts as a replacement
would (`initial_state = "existing"`): it neither votes nor stands until it
holds the leader's log, which it gets as a snapshot plus the log tail. A node
whose data directory already names its voters has joined before and starts
normally; one whose earlier attempt was added but crashed before saving finds
itself already a member and carries on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from kvnode.config import ConfigError, NodeConfig
from kvnode.raft.voters import save_voters
from kvnode.storage.layout import prepare_node_dir
from kvnode.tls import client_context

log = logging.getLogger(__name__)

JOIN_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 15.0
RETRY_SECONDS = 1.0
MAX_REDIRECTS = 3


class JoinRefused(ConfigError):
    """The cluster said no (or could not be reached in time): the node does not start."""


async def join_cluster(config: NodeConfig) -> NodeConfig:
    """Become a voter of the cluster at `config.join`; `config` as this node now runs."""
    prepare_node_dir(Path(config.data_dir))
    body = orjson.dumps(
        {"raft_addr": config.raft_addr, "http_url": config.client_url, "id": config.node_id}
    )
    headers = {"Content-Type": "application/json"}
    if config.auth_token:
        headers["Authorization"] = f"Bearer {config.auth_token}"
    deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            try:
                members = await _ask(session, config, body, headers)
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
    save_voters(Path(config.data_dir), voters, durable=config.durable)
    log.info("joined the cluster; its voters are %s", ", ".join(voters))
    peers = tuple(v for v in voters if v != config.raft_addr)
    return dataclasses.replace(config, peers=peers, join="", initial_state="existing")


class _TryAgain(Exception):
    """No answer yet that settles it (unreachable, no leader, a change in progress)."""


async def _ask(
    session: aiohttp.ClientSession, config: NodeConfig, body: bytes, headers: dict[str, str]
) -> list[dict[str, Any]]:
    url = config.join.rstrip("/") + "/cluster/members"
    for _ in range(MAX_REDIRECTS + 1):
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False, ssl=_tls(config, url)
            ) as response:
                status, answer = response.status, await response.read()
                location = response.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _TryAgain(f"{url}: {exc!r}") from None
        try:
            reply = orjson.loads(answer)
        except orjson.JSONDecodeError:
            raise _TryAgain(f"{url} answered {status} without JSON") from None
        if status == 307 and location:
            url = location
            continue
        if status == 201:
            return list(reply["members"])
        if status == 409 and reply.get("error") == "member_exists":
            member = reply.get("member", {})
            if member.get("raft_addr") == config.raft_addr and member.get("http_url") in (
                None,
                config.client_url,
            ):
                return list(reply["members"])  # added by an earlier attempt
        if status in (503, 504) or (status == 409 and "in_progress" in reply.get("error", "")):
            raise _TryAgain(f"{status} {reply.get('error')}: {reply.get('message')}")
        raise JoinRefused(
            f"join: {url} refused: {status} {reply.get('error')}: {reply.get('message')}"
        )
    raise _TryAgain(f"more than {MAX_REDIRECTS} redirects")


def _tls(config: NodeConfig, url: str) -> ssl.SSLContext | bool:
    """For an https cluster: trust the CA this node trusts its own clients with (else the
    system's), and present this node's certificate."""
    if not url.startswith("https://"):
        return True
    return client_context(
        config.tls_client_ca_file or None, config.tls_cert_file or None, config.tls_key_file or None
    )
