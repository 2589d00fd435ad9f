"""kvnode: a Raft-replicated, durable key-value server."""

__version__ = "0.1.0"
