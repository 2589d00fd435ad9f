"""The control channel of a running `kvnode cluster up`: a unix socket in its data directory.

`cluster up` owns the node processes (they are its children, so its Ctrl-C stops
every one of them, including nodes brought back later). A second terminal asks it
to act through `<data>/cluster.sock`: one JSON line in, one JSON line out.

    request:  {"op": "kill", "node": "leader", "signal": "KILL"}
    reply:    {"ok": true, "message": "killed node2 (SIGKILL)"}
              {"ok": false, "error": "node2 is not running", "exit_code": 2}

The socket doubles as the "already running" lock: a second `cluster up` that can
connect to it refuses to start; a socket file nobody answers on is left over
from a `cluster up` that was killed, and is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

SOCKET_NAME = "cluster.sock"
MAX_SOCKET_PATH_BYTES = 107  # sun_path on Linux, less the terminating NUL
REPLY_TIMEOUT_SECONDS = 60.0  # a graceful stop may take STOP_GRACE_SECONDS and more
EXIT_USAGE = 2
SIGNALS = ("KILL", "TERM", "STOP", "CONT")  # what `kvnode cluster kill --signal` sends
RESTART_POLICIES = ("no", "on-failure")  # `kvnode cluster up --restart`
EXIT_RUNTIME = 1

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """A refusal worded for the operator, with the exit code the CLI should use."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def socket_path(data_dir: Path) -> Path:
    path = data_dir.resolve() / SOCKET_NAME
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise ControlError(
            f"the data directory path is too long for a control socket ({path}); "
            "use a shorter --data"
        )
    return path


def no_cluster(data_dir: Path) -> ControlError:
    return ControlError(
        f"no kvnode cluster is running in {data_dir} (start one with: kvnode cluster up"
        f" --data {data_dir})"
    )


async def ask(data_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the `cluster up` running in `data_dir`; raise ControlError on a
    refusal or when none is running."""
    path = socket_path(data_dir)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        raise no_cluster(data_dir) from None
    try:
        writer.write(orjson.dumps(request) + b"\n")
        await writer.drain()
        async with asyncio.timeout(REPLY_TIMEOUT_SECONDS):
            line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if not line:
        raise ControlError(f"the cluster in {data_dir} closed the connection", EXIT_RUNTIME)
    reply = orjson.loads(line)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "refused"), reply.get("exit_code", EXIT_USAGE))
    answer: dict[str, Any] = reply
    return answer


async def _is_answering(path: Path) -> bool:
    try:
        _reader, writer = await asyncio.open_unix_connection(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise
    writer.close()
    return True


async def serve(data_dir: Path, handler: Handler) -> asyncio.AbstractServer:
    """Claim `data_dir`'s control socket and answer requests with `handler`.

    Raises ControlError when another `cluster up` already answers there.
    """
    path = socket_path(data_dir)
    if path.exists() or path.is_symlink():
        if await _is_answering(path):
            raise ControlError(
                f"a kvnode cluster is already running in {data_dir} (its control socket"
                f" {path} answers); stop it first, or use another --data"
            )
        path.unlink()  # left over from a `cluster up` that was killed

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if not line:
                return
            try:
                request = orjson.loads(line)
                reply = await handler(request)
            except ControlError as exc:
                reply = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
            except orjson.JSONDecodeError:
                reply = {"ok": False, "error": "the request is not JSON", "exit_code": EXIT_USAGE}
            writer.write(orjson.dumps(reply) + b"\n")
            await writer.drain()
        except ConnectionError:
            pass  # the asking CLI went away (Ctrl-C); nothing to tell it
        finally:
            writer.close()

    try:
        return await asyncio.start_unix_server(on_connection, path=str(path))
    except OSError as exc:  # another `cluster up` won the race for the same path
        raise ControlError(f"cannot claim the control socket {path}: {exc.strerror}") from None
