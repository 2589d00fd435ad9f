"""The cost of one unix-socket round trip between two processes, per batch of requests.

An input of docs/benchmarks.md's multi-core section: a node with HTTP worker processes
would forward each request (or each batch of one loop turn) to the process that runs
Raft and the state machine, and take the reply back. Here a "worker" process sends
batches of length-prefixed frames (a 150-byte request each, about what a PUT of a
100-byte value carries) over a unix socket to a "core" process, on uvloop like a node,
which answers each frame with 80 bytes; nothing else is done, so the CPU each process
spends is the forwarding's own. Printed: CPU µs per request in each process, and per
batch, for batches of 1, 16 and 64 requests (`scripts/bench.sh unix-hop`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import struct
import time
from typing import cast

import click

REQUEST = b"r" * 150
REPLY = b"a" * 80
HEADER = struct.Struct("!I")
BATCHES = (1, 16, 64)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def frames_in(buffer: bytearray) -> list[bytes]:
    """Complete frames at the head of `buffer` (removed from it)."""
    found = []
    while len(buffer) >= HEADER.size:
        (length,) = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + length:
            break
        found.append(bytes(buffer[HEADER.size : HEADER.size + length]))
        del buffer[: HEADER.size + length]
    return found


class Core(asyncio.Protocol):
    """The Raft process's side: answers every request frame at once, replies of one read
    in one write (as a batch's replies would go back)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)  # uvloop's: no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        count = len(frames_in(self._buffer))
        if count and self._transport is not None:
            self._transport.write(frame(REPLY) * count)


def run_core(sock: socket.socket) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(Core, sock)
        await asyncio.Event().wait()

    uvloop.run(main())


async def drive(sock: socket.socket, batch: int, seconds: float) -> int:
    """Send batches of `batch` requests, each after the replies of the last; requests sent."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    buffer = bytearray()
    message = frame(REQUEST) * batch
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        writer.write(message)
        received = 0
        while received < batch:
            buffer += await reader.read(65536)
            received += len(frames_in(buffer))
        sent += batch
    writer.close()
    return sent


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@click.command()
@click.option("--seconds", default=3.0, show_default=True, help="Per batch size and round.")
@click.option("--rounds", default=3, show_default=True)
def main(seconds: float, rounds: int) -> None:
    """Round trips over a unix socket between two processes (see the module's docstring)."""
    import uvloop

    results: dict[int, list[tuple[float, float, float]]] = {}
    for _ in range(rounds):
        for batch in BATCHES:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            pid = os.fork()
            if pid == 0:
                ours.close()
                run_core(theirs)
                os._exit(0)
            theirs.close()
            worker_before, core_before = cpu_seconds(os.getpid()), cpu_seconds(pid)
            sent = uvloop.run(drive(ours, batch, seconds))
            worker = cpu_seconds(os.getpid()) - worker_before
            core = cpu_seconds(pid) - core_before
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            results.setdefault(batch, []).append(
                (worker / sent * 1e6, core / sent * 1e6, sent / seconds)
            )
    click.echo(
        f"{'batch':>5} {'worker µs/req':>14} {'core µs/req':>12} {'µs/batch (both)':>16}"
        f" {'requests/s':>11}"
    )
    for batch, samples in results.items():
        worker = statistics.median(s[0] for s in samples)
        core = statistics.median(s[1] for s in samples)
        rate = statistics.median(s[2] for s in samples)
        click.echo(
            f"{batch:>5} {worker:>14.1f} {core:>12.1f} {(worker + core) * batch:>16.1f}"
            f" {rate:>11.0f}"
        )


if __name__ == "__main__":
    main()
