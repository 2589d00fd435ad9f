"""The follower's half of Raft §5.3: what an append-entries message may change in its log.

PySyncObj's follower, whenever the message's previous entry matches and it holds
more entries than that, deletes everything after `prevLogIdx` and appends what
the message carries. A late, duplicated or shorter append (a resend after a
nextIndex reset, a reconnect, pipelining) then cuts entries the follower had
acknowledged, and applied, until the same entries come again: for that moment a
committed entry has one copy fewer than the majority the leader counted.

Raft's rule is narrower, and `plan_append` computes it from the follower's log:

- entries the follower already holds with the same term are skipped;
- the log is truncated only from the first entry whose term conflicts;
- only the entries after that are appended;
- the reply acknowledges exactly what the message covered (`prevLogIdx` plus its
  entries), never more: entries the follower holds beyond that may still
  conflict with the leader's log;
- the commit index it may learn is bounded by the same index, and never moves back.

A conflict at or below the commit index cannot happen in Raft (a committed entry is
in every later leader's log), so it is reported for the caller to fail-stop on.

The plan is handed to PySyncObj as an equivalent message whose `prevLogIdx` it will
not truncate after (raft/pysyncobj/transport.py), so the rest of its handling (leader, term,
election timer, membership entries) is PySyncObj's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Entry = tuple[bytes, int, int]  # PySyncObj's (command, index, term)
TermAt = Callable[[int], "int | None"]  # the term of the follower's entry at an index


@dataclass(frozen=True)
class AppendPlan:
    """What to hand PySyncObj instead of the leader's message.

    `prev_index`/`prev_term` name an entry the follower holds after which nothing is
    cut unless `entries` conflict there; `acknowledge` is the index the reply may
    vouch for; `commit_bound` caps the leader's commit index the follower adopts."""

    prev_index: int
    prev_term: int
    entries: list[Entry]
    acknowledge: int
    commit_bound: int
    conflict: int | None  # the index truncated from, if any


def plan_append(
    term_at: TermAt,
    last_index: int,
    prev_index: int,
    prev_term: int,
    entries: Sequence[Entry],
) -> AppendPlan | None:
    """The §5.3 plan for a message whose previous entry is (`prev_index`, `prev_term`),
    against a follower log ending at `last_index`. None: the previous entry is missing or
    has another term, and the message is refused as PySyncObj refuses it (no change)."""
    if term_at(prev_index) != prev_term:
        return None
    covered = entries[-1][1] if entries else prev_index
    skip = 0
    base_index, base_term = prev_index, prev_term
    conflict: int | None = None
    for _command, index, term in entries:
        held = term_at(index) if index <= last_index else None
        if held is None:
            break
        if held != term:
            conflict = index
            break
        skip += 1
        base_index, base_term = index, term
    rest = list(entries[skip:])
    if not rest and last_index > base_index:
        # Everything is held already: present the follower's own last entry as the
        # previous one, so nothing is cut; the reply is lowered to `covered`.
        base_index = last_index
        held_term = term_at(last_index)
        assert held_term is not None
        base_term = held_term
    return AppendPlan(base_index, base_term, rest, covered, covered, conflict)
