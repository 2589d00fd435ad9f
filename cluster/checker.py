"""Linearizability checker for per-key register histories (put, get, delete, CAS, TTL).

Keys are independent registers, so each key's history is checked on its own
(P-compositionality). The search is Wing & Gong's, with Lowe's memoisation:
depth-first over "which operations have taken effect so far" (a bitmask) and
the register state, where an operation may be linearized next only if no
other pending operation completed before it was invoked. Indeterminate writes
may take effect at any point after their invocation, or never. A key's value
may also expire: a read may see it absent once its deadline (the time the
write put in it) has passed.

Long, fault-heavy histories would make the exact search give up, so
`check_key` first tries cheaper checks that can only *prove* linearizability
(each restricts the model: unobserved indeterminate writes left out,
indeterminate ops confined to a window after their invocation); only when they
all fail does the exact search decide, and a search that gives up is reported
as inconclusive, never as a pass.

On a violation the report carries a minimal failing sub-history: operations
are removed one at a time as long as the remainder still fails.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from .history import FAIL, INFO, OK, Op

# A register state: (value, earliest deadline, latest deadline). A TTL write's exact
# deadline is known only when it was acknowledged; an indeterminate one may expire
# any time after invoke + ttl.
State = tuple[str | None, float, float]
ABSENT: State = (None, math.inf, math.inf)
CLOCK_SLACK = 0.05  # seconds between the node's clock reading and the client's
MAX_STATES = 2_000_000
MINIMIZE_LIMIT = 200  # operations; beyond this a violation is reported with context only
MINIMIZE_CONTEXT = 40
INCONCLUSIVE = "inconclusive"
INDETERMINATE_WINDOW = 10.0  # seconds; see _IndeterminateWindows


@dataclass
class KeyVerdict:
    key: str
    linearizable: bool
    ops: int
    minimal: list[Op] = field(default_factory=list)
    reason: str = ""


def _relevant(ops: Iterable[Op]) -> list[Op]:
    """Drop what carries no information: failed ops, and reads with no answer."""
    return [op for op in ops if op.outcome != FAIL and (op.outcome == OK or op.is_write)]


def _written(op: Op) -> State:
    if op.ttl is None:
        return (op.value, math.inf, math.inf)
    if op.expire_at is not None:
        return (op.value, op.expire_at - CLOCK_SLACK, op.expire_at + CLOCK_SLACK)
    return (op.value, op.invoke + op.ttl, math.inf)


def _step(state: State, op: Op) -> State | None:
    """The state after `op` takes effect, or None if its observed result is impossible."""
    value, expires_lo, expires_hi = state
    if op.kind == "get":
        if op.value is None:  # absent: never written, deleted, or expired by the time it answered
            return state if value is None or expires_lo <= op.complete else None
        return state if value == op.value and expires_hi > op.invoke else None
    may_be_live = value is not None and expires_hi > op.invoke
    may_be_dead = value is None or expires_lo <= op.complete
    if op.kind == "put":
        return _written(op)
    if op.kind == "delete":
        if op.outcome == OK and op.result == "not_found":
            return ABSENT if may_be_dead else None
        if op.outcome == OK and op.result == "applied" and not may_be_live:
            return None
        return ABSENT
    # cas: compares against the live value
    may_match = may_be_live and value == op.prev
    may_differ = may_be_dead or value != op.prev
    if op.outcome == OK and op.result == "compare_failed":
        return state if may_differ else None
    if op.outcome == OK:
        return _written(op) if may_match else None
    return _written(op) if may_match else state  # indeterminate: took effect or not


class _IndeterminateWindows:
    """Optionally, indeterminate ops may take effect only within `window` seconds of their
    invocation (or never). That is a restriction of the model, so a history that passes
    with it passes without it; it keeps one pending op from multiplying the whole rest
    of the search. An op is out of its window once an op invoked after its deadline has
    been linearized (nothing linearized later can precede that op)."""

    def __init__(self, ops: Sequence[Op], window: float | None) -> None:
        self._invokes = [op.invoke for op in ops]
        timed = []
        if window is not None:
            timed = sorted(
                (op.invoke + window, i) for i, op in enumerate(ops) if op.outcome == INFO
            )
        self._deadlines = [deadline for deadline, _ in timed]
        self._expired: list[int] = [0]  # _expired[k]: mask of the k earliest deadlines
        for _, i in timed:
            self._expired.append(self._expired[-1] | 1 << i)

    def close(self, done: int) -> int:
        """`done` plus every indeterminate op whose window has passed (it never took effect)."""
        if not self._deadlines or not done:
            return done
        now = self._invokes[done.bit_length() - 1]  # latest invocation linearized so far
        return done | self._expired[bisect.bisect_left(self._deadlines, now)]


def linearizable(ops: Sequence[Op], *, window: float | None = None) -> tuple[bool, str]:
    """Whether one key's operations have a legal linearization (see `_IndeterminateWindows`
    for `window`)."""
    ops = sorted(ops, key=lambda op: op.invoke)
    n = len(ops)
    must = 0
    for i, op in enumerate(ops):
        if op.outcome == OK:
            must |= 1 << i
    windows = _IndeterminateWindows(ops, window)
    everything = (1 << n) - 1
    seen: set[tuple[int, State]] = set()
    stack: list[tuple[int, State]] = [(0, ABSENT)]
    while stack:
        done, state = stack.pop()
        done = windows.close(done)
        if done & must == must:
            return True, ""
        if (done, state) in seen:
            continue
        seen.add((done, state))
        if len(seen) > MAX_STATES:
            return False, f"{INCONCLUSIVE}: search gave up after {MAX_STATES} states"
        # Candidates: pending ops invoked before the earliest completion among pending ops.
        # Scanning in invoke order, an op invoked after the running minimum of completions
        # cannot complete earlier, so the scan stops there.
        # Pending ops are visited as set bits (lowest first), so the many ops already
        # linearized cost nothing: only old indeterminate ops and the frontier are seen.
        horizon = math.inf
        pending = everything & ~done
        while pending:
            lowest = pending & -pending
            i = lowest.bit_length() - 1
            if ops[i].invoke > horizon:
                break
            horizon = min(horizon, ops[i].complete)
            nxt = _step(state, ops[i])
            if nxt is not None:
                stack.append((done | lowest, nxt))
            pending ^= lowest
    return False, "no order of these operations explains every observed result"


def _removable(op: Op, rest: Sequence[Op]) -> bool:
    """A write may go only if nothing left observed its value; otherwise removing it would
    fabricate a "read of a value never written" that the real history did not have."""
    if not op.is_write or op.value is None:
        return True
    return not any(
        (other.kind == "get" and other.value == op.value)
        or (other.kind == "cas" and other.prev == op.value)
        for other in rest
    )


def shortest_failing_prefix(ops: Sequence[Op]) -> list[Op]:
    """The shortest prefix (by invocation) that already fails; histories are prefix-closed."""
    ordered = sorted(ops, key=lambda op: op.invoke)
    low, high = 1, len(ordered)
    while low < high:
        middle = (low + high) // 2
        if check_key(ordered[:middle])[0]:
            low = middle + 1
        else:
            high = middle
    return ordered[:high]


def minimize(ops: Sequence[Op]) -> list[Op]:
    """Remove operations one at a time while the rest still fails to linearize.

    Long histories are first cut to their shortest failing prefix; past
    MINIMIZE_LIMIT operations only the prefix's last operations are reported.
    """
    current = shortest_failing_prefix(ops)
    if len(current) > MINIMIZE_LIMIT:
        return current[-MINIMIZE_CONTEXT:]
    changed = True
    while changed:
        changed = False
        for i in range(len(current)):
            candidate = current[:i] + current[i + 1 :]
            if candidate and _removable(current[i], candidate) and not linearizable(candidate)[0]:
                current = candidate
                changed = True
                break
    return current


def without_unobserved_indeterminate_writes(ops: Sequence[Op]) -> list[Op]:
    """Drop indeterminate puts and CASes whose value no one observed.

    Sound for a passing verdict: such a write may simply not have happened, so
    if the history without it is linearizable, so is the full one. It keeps
    the search small, since every pending indeterminate write doubles the ways
    the rest can be ordered. (Indeterminate deletes stay: their effect, an
    absent key, cannot be traced to them, so a later "not found" may need them.)
    """
    observed = {op.value for op in ops if op.kind == "get"} | {
        op.prev for op in ops if op.kind == "cas"
    }
    return [
        op
        for op in ops
        if not (op.outcome == INFO and op.kind != "delete" and op.value not in observed)
    ]


def settle_observed_writes(ops: Sequence[Op]) -> list[Op]:
    """Indeterminate writes whose (unique) value someone observed did take effect, before
    the first observer completed: make them acknowledged writes with that completion.

    Exact, not a heuristic: every legal linearization already orders such a
    write before its observers, so the answer does not change, but the write
    no longer stays pending (and multiplies the search) for the rest of the run.
    """
    writers = Counter(op.value for op in ops if op.kind in ("put", "cas"))
    first_seen: dict[str, float] = {}
    for op in ops:
        if op.outcome != OK:
            continue
        if op.kind == "get" and op.value is not None:
            seen = op.value
        elif op.kind == "cas" and op.result == "applied" and op.prev is not None:
            seen = op.prev
        else:
            continue
        first_seen[seen] = min(first_seen.get(seen, math.inf), op.complete)
    settled = []
    for op in ops:
        if (
            op.outcome == INFO
            and op.kind in ("put", "cas")
            and op.value in first_seen
            and writers[op.value] == 1
        ):
            complete = max(op.invoke, first_seen[op.value])
            op = replace(op, outcome=OK, result="applied", complete=complete)
        settled.append(op)
    return settled


def check_key(ops: Sequence[Op]) -> tuple[bool, str]:
    """Cheap sufficient checks first (each passing one proves the history linearizable),
    then the exact search, which may give up on a long, fault-heavy history."""
    settled = settle_observed_writes(ops)
    for sufficient in (without_unobserved_indeterminate_writes(settled), settled):
        if linearizable(sufficient, window=INDETERMINATE_WINDOW)[0]:
            return True, ""
    return linearizable(settled)


def check_history(ops: Iterable[Op]) -> list[KeyVerdict]:
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    verdicts = []
    for key in sorted(by_key):
        relevant = _relevant(by_key[key])
        ok, reason = check_key(relevant)
        verdict = KeyVerdict(key, ok, len(relevant), reason=reason)
        if not ok and not reason.startswith(INCONCLUSIVE):
            verdict.minimal = minimize(relevant)
        verdicts.append(verdict)
    return verdicts


def lost_writes(ops: Iterable[Op], final_values: dict[str, str | None]) -> list[Op]:
    """Acknowledged writes that are neither the final value nor superseded by a later write.

    `final_values` holds each key's value read (linearizably) after the run; a key
    without a final read cannot be judged here and is left out.
    """
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    lost = []
    for key, key_ops in by_key.items():
        if key not in final_values:
            continue
        final = final_values[key]
        for op in key_ops:
            if op.outcome != OK or op.kind not in ("put", "cas") or op.result != "applied":
                continue
            if op.value == final:
                continue
            superseded = any(  # a write that may take effect after this one
                other.is_write
                and (other.outcome == INFO or other.result == "applied")
                and other.complete > op.invoke
                for other in key_ops
                if other is not op
            )
            expired = op.ttl is not None
            if not superseded and not expired:
                lost.append(op)
    return lost
