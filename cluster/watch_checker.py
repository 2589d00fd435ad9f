"""Judges what the chaos watchers saw against the operations the clients made.

The committed history of a key is not known to the clients directly, but it is
pinned down from both sides:
- every watcher must see, for each key, the same sequence of events (same
  revisions, types and values, in the same order, none twice), within the
  common window from the start revision to the end marker;
- every acknowledged write must be in it, at the revision it was acknowledged
  with (a put or swap with its value, a delete as a delete). A put whose TTL
  ran out before it was applied is dead on arrival: the store writes nothing
  and watchers see an expiry of the old value, or nothing. That can only be a
  put that took at least its TTL from call to answer, so only such a put may
  be missing;
- nothing may be in it that no client could have written: every put event
  carries a value of a write that was not refused (values are unique).
So a watcher that misses, repeats, reorders or invents an event, or a node
that serves a history other than the log's, is caught.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .history import INFO, OK, Op
from .watchers import END_MARKER, WatcherLog

Event = tuple[int, str, str, str | None]


def by_key(events: list[Event]) -> dict[str, list[Event]]:
    keys: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        keys[event[2]].append(event)
    return keys


def in_order_once(events: list[Event]) -> bool:
    """Revisions never go back, and no key has two events at one revision (one command
    may change several keys, in an order of its own)."""
    revisions = [event[0] for event in events]
    unique = {(revision, key) for revision, _kind, key, _value in events}
    return revisions == sorted(revisions) and len(unique) == len(events)


def check_watchers(logs: list[WatcherLog], history: list[Op]) -> dict[str, Any]:
    problems: list[str] = []
    for log in logs:
        if log.error is not None:
            problems.append(f"{log.name}: {log.error}")
        if not in_order_once(log.events):
            problems.append(f"{log.name}: events repeated or out of revision order")
    complete = [log for log in logs if log.error is None]
    reference = complete[0] if complete else None
    if reference is not None:
        expected = by_key(reference.events)
        for log in complete[1:]:
            got = by_key(log.events)
            for key in sorted(set(expected) | set(got)):
                if got.get(key, []) != expected.get(key, []):
                    problems.append(
                        f"{log.name} and {reference.name} disagree on {key}: "
                        f"{_first_difference(got.get(key, []), expected.get(key, []))}"
                    )
        problems.extend(_against_operations(reference, history))
    return {
        "valid": not problems,
        "watchers": len(logs),
        "events": [len(log.events) for log in logs],
        "nodes_used": [sorted(log.nodes) for log in logs],
        "problems": problems[:20],
    }


def _against_operations(reference: WatcherLog, history: list[Op]) -> list[str]:
    problems = []
    seen = {(revision, key): (kind, value) for revision, kind, key, value in reference.events}
    for op in history:
        if op.outcome != OK or op.result != "applied" or op.revision is None:
            continue
        got = seen.get((op.revision, op.key))
        wanted = ("delete", None) if op.kind == "delete" else ("put", op.value)
        if got != wanted and not (_maybe_dead_on_arrival(op) and got in (None, ("expire", None))):
            problems.append(
                f"acknowledged {op.describe()} at revision {op.revision}: watchers saw {got}"
            )
    writable = {
        op.value
        for op in history
        if op.kind in ("put", "cas") and (op.outcome == INFO or op.result == "applied")
    }
    for revision, kind, key, value in reference.events:
        if kind == "put" and key != END_MARKER and value not in writable:
            problems.append(f"put of {value!r} to {key} at {revision}: no client wrote it")
    return problems


def _maybe_dead_on_arrival(op: Op) -> bool:
    return op.ttl is not None and op.complete - op.invoke >= op.ttl


def _first_difference(got: list[Event], expected: list[Event]) -> str:
    for mine, theirs in zip(got, expected, strict=False):
        if mine != theirs:
            return f"{mine} where the other has {theirs}"
    return f"{len(got)} events where the other has {len(expected)}"
