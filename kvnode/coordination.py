"""Where locks and elections were imported from before the client became a package: kept
so that code written against `kvnode.coordination` goes on working. They live in
`kvnode.client.coordination`, and `kvnode.client` exports them."""

from kvnode.client.coordination import LOCKS_PREFIX, Lock, LockLost, election, observe

__all__ = ["LOCKS_PREFIX", "Lock", "LockLost", "election", "observe"]
