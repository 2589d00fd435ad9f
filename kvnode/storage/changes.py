"""What each applied command changed, key by key: the feed that watches are served from.

The key space reports every change as it applies a command (on the leader,
on followers and on WAL replay alike), so every replica produces the same
changes at the same revisions. What is kept of them, and for how long, is the
consumer's business (`kvnode.watch.history`); the state machine only reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol

ChangeKind = Literal["put", "delete", "expire"]


class Change(NamedTuple):
    """One key changed by the command at `revision`. `value` is None for delete and expire;
    `create_revision` is that of the record written (put) or removed (delete, expire)."""

    kind: ChangeKind
    key: str
    revision: int
    create_revision: int
    value: bytes | None


class ChangeSink(Protocol):
    """Receives the changes of a state machine. Called in the applying thread, under the
    state machine's lock, so it must be quick and must not call back into the machine."""

    def changed(self, change: Change) -> None:
        """One key changed; changes arrive in revision order."""

    def applied(self, revision: int) -> None:
        """Every command up to `revision` is applied (the revision moved, changes or not)."""

    def reset(self, revision: int) -> None:
        """The state was replaced by an image at `revision` (recovery or a snapshot): the
        changes at or before it will not be reported (again)."""

    def persist(self, revision: int) -> Callable[[], None] | None:
        """A checkpoint at `revision` is about to be written: what to run first (in the same
        thread or forked child) so the changes up to it outlive a restart, if anything."""


class IgnoreChanges:
    """The sink of a state machine nobody watches."""

    def changed(self, change: Change) -> None:
        pass

    def applied(self, revision: int) -> None:
        pass

    def reset(self, revision: int) -> None:
        pass

    def persist(self, revision: int) -> Callable[[], None] | None:
        return None


IGNORE_CHANGES = IgnoreChanges()
