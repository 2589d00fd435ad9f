"""Node configuration: a TOML file, overridden by KVNODE_* environment variables, overridden
by command-line flags; validated up front so a bad setting fails with one clear line.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "KVNODE_"
# Defaults that the state machine and the HTTP API use too when built without a config.
CHECKPOINT_EVERY_ENTRIES = 1000
CHECKPOINT_EVERY_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 10.0
FSYNC_MODES = ("always", "never")
INITIAL_STATES = ("new", "existing")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_KEY_BYTES = 1024


class ConfigError(ValueError):
    """A configuration problem, worded for the operator."""


@dataclass(frozen=True)
class NodeConfig:
    node_id: str = "node1"
    raft_addr: str = "127.0.0.1:4321"
    peers: tuple[str, ...] = ()
    http_addr: str = "127.0.0.1:8001"
    # The URL other nodes and clients reach this node's HTTP API at (published in the
    # member directory, shown as X-KV-Leader). Default: from http_addr, with the host of
    # raft_addr when http_addr listens on every interface (0.0.0.0 / ::).
    advertise_url: str = ""
    # A running cluster's URL: this node, started empty, asks it to be added (--join).
    join: str = ""
    data_dir: Path = Path("data/node1")
    fsync: str = "always"
    checkpoint_entries: int = CHECKPOINT_EVERY_ENTRIES
    checkpoint_seconds: float = CHECKPOINT_EVERY_SECONDS
    snapshot_entries: int = 5000
    snapshot_bytes: int = 64 * 1024 * 1024  # ...or once the live log holds this many bytes
    snapshot_seconds: float = 300.0
    # Checkpoints and Raft snapshots are written by a forked child (copy-on-write memory),
    # so a large state does not hold up heartbeats. false: written in the Raft thread,
    # which needs no extra memory but stalls it for seconds on millions of keys.
    fork_snapshots: bool = True
    max_value_bytes: int = 1024 * 1024
    request_timeout: float = 5.0
    body_timeout: float = BODY_TIMEOUT_SECONDS
    header_timeout: float = 10.0
    max_http_connections: int = 0  # 0: as many as the descriptor limit allows (see server.py)
    max_list_bytes: int = 4 * 1024 * 1024
    max_txn_ops: int = 128  # compares, and ops in each branch, of one transaction
    watch_history: int = 100_000  # changes kept for watches from a past revision
    watch_history_bytes: int = 256 * 1024 * 1024  # ...and at most this many bytes of them
    max_watchers: int = 10_000  # long-polls and streams served at once (beyond: 503)
    quota_bytes: int = 2 * 1024**3  # keys and values beyond which writes that add get 507
    append_entries_period: float = 0.05
    election_timeout_min: float = 0.4
    election_timeout_max: float = 1.4
    cluster_secret: str = ""
    auth_token: str = ""
    tls_cert_file: str = ""  # with tls_key_file: serve HTTPS instead of HTTP
    tls_key_file: str = ""
    tls_client_ca_file: str = ""  # also require client certificates signed by this CA
    insecure: bool = False
    log_level: str = "info"
    repair: bool = False
    # "existing": a node started empty in a running cluster (a replacement) must not vote
    # or stand for election until it holds the current term's log (raft/catch_up.py).
    initial_state: str = "new"
    # TEST ONLY: serve linearizable reads from local state without the read barrier.
    # This breaks linearizability on purpose, so the chaos checker can be shown to catch it.
    unsafe_local_reads: bool = False

    @property
    def durable(self) -> bool:
        return self.fsync == "always"

    @property
    def http_host_port(self) -> tuple[str, int]:
        return split_address(self.http_addr, "http_addr")

    @property
    def single_node(self) -> bool:
        return not self.peers and not self.join

    @functools.cached_property
    def client_url(self) -> str:
        """This node's HTTP API as others reach it (`advertise_url` or derived); worked out
        once (it is in every reply's X-KV-Leader on the leader)."""
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host, port = self.http_host_port
        if host in ("", "0.0.0.0", "::"):
            host = split_address(self.raft_addr, "raft_addr")[0]
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://{host}:{port}"


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(NodeConfig)}


def split_address(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: {value!r} is not a host:port address (e.g. 127.0.0.1:4321)")
    return host.strip("[]"), int(port)


def split_url(value: str, key: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s)://host:port URL, or a ConfigError."""
    parsed = urllib.parse.urlsplit(value)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or port is None
        or parsed.path not in ("", "/")
        or parsed.query
        or parsed.username
    ):
        raise ConfigError(f"{key}: {value!r} is not an http(s)://host:port URL")
    return parsed.scheme, parsed.hostname, port


def is_loopback(address: str) -> bool:
    host, _port = split_address(address, "address")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def _coerce(key: str, value: Any) -> Any:
    kind = FIELD_TYPES[key]
    try:
        if kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "Path":
            return Path(value)
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(p.strip() for p in value.split(",") if p.strip())
            if not isinstance(value, list | tuple) or not all(isinstance(p, str) for p in value):
                raise ValueError(value)
            return tuple(value)
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: {value!r} is not a valid {kind}") from None


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> NodeConfig:
    """File < environment < explicit overrides (flags). Unknown keys are errors."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                values.update(tomllib.load(handle))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        unknown = sorted(set(values) - set(FIELD_TYPES))
        if unknown:
            raise ConfigError(
                f"config file {path}: unknown key {unknown[0]!r} "
                f"(known keys: {', '.join(sorted(FIELD_TYPES))})"
            )
    env = os.environ if environ is None else environ
    for key in FIELD_TYPES:
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            values[key] = env_value
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    config = NodeConfig(**{key: _coerce(key, value) for key, value in values.items()})
    validate(config)
    return config


def validate(config: NodeConfig) -> None:
    split_address(config.raft_addr, "raft_addr")
    split_address(config.http_addr, "http_addr")
    for peer in config.peers:
        split_address(peer, "peers")
    for key in ("advertise_url", "join"):
        if getattr(config, key):
            split_url(getattr(config, key), key)
    if config.join and config.peers:
        raise ConfigError("join: a joining node takes its peers from the cluster; give no peers")
    if config.raft_addr in config.peers:
        raise ConfigError(f"peers: lists this node's own raft_addr {config.raft_addr}")
    if len(set(config.peers)) != len(config.peers):
        raise ConfigError("peers: an address is listed twice")
    if config.fsync not in FSYNC_MODES:
        raise ConfigError(f"fsync: {config.fsync!r} must be one of {', '.join(FSYNC_MODES)}")
    if config.initial_state not in INITIAL_STATES:
        raise ConfigError(
            f"initial_state: {config.initial_state!r} must be one of {', '.join(INITIAL_STATES)}"
        )
    if config.initial_state == "existing" and not config.peers and not config.join:
        raise ConfigError("initial_state: 'existing' joins a running cluster; give its peers")
    if config.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level: {config.log_level!r} must be one of {', '.join(LOG_LEVELS)}")
    positive = {
        "checkpoint_entries": config.checkpoint_entries,
        "checkpoint_seconds": config.checkpoint_seconds,
        "snapshot_entries": config.snapshot_entries,
        "snapshot_bytes": config.snapshot_bytes,
        "snapshot_seconds": config.snapshot_seconds,
        "max_value_bytes": config.max_value_bytes,
        "request_timeout": config.request_timeout,
        "body_timeout": config.body_timeout,
        "header_timeout": config.header_timeout,
        "max_list_bytes": config.max_list_bytes,
        "max_txn_ops": config.max_txn_ops,
        "watch_history": config.watch_history,
        "watch_history_bytes": config.watch_history_bytes,
        "max_watchers": config.max_watchers,
        "quota_bytes": config.quota_bytes,
        "append_entries_period": config.append_entries_period,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key}: must be greater than 0 (got {value})")
    if config.max_http_connections < 0:
        raise ConfigError("max_http_connections: must be 0 (automatic) or more")
    if config.snapshot_entries < 2:
        raise ConfigError("snapshot_entries: must be at least 2")
    if (
        not config.election_timeout_max
        > config.election_timeout_min
        > (3 * config.append_entries_period)
    ):
        raise ConfigError(
            "election timeouts: need election_timeout_max > election_timeout_min > "
            "3 x append_entries_period"
        )
    if not config.node_id or not config.node_id.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"node_id: {config.node_id!r} must be letters, digits, '-' or '_'")
    if bool(config.tls_cert_file) != bool(config.tls_key_file):
        raise ConfigError("tls_cert_file and tls_key_file: give both (HTTPS) or neither")
    if config.tls_client_ca_file and not config.tls_cert_file:
        raise ConfigError("tls_client_ca_file: mutual TLS needs tls_cert_file and tls_key_file")
    if config.insecure and not config.cluster_secret:
        exposed = [a for a in (config.raft_addr, *config.peers) if not is_loopback(a)]
        if exposed:
            raise ConfigError(
                f"insecure: refused because {exposed[0]} is not a loopback address; without a"
                " cluster_secret peer traffic is unauthenticated, so --insecure is for"
                " 127.0.0.0/8 and ::1 only"
            )
    if not config.single_node and not config.cluster_secret and not config.insecure:
        raise ConfigError(
            "cluster_secret: a multi-node node needs a shared secret (peer traffic is "
            "otherwise unauthenticated); set cluster_secret / KVNODE_CLUSTER_SECRET, or pass "
            "--insecure on a trusted network"
        )
