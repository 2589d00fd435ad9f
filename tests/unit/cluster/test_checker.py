"""The linearizability checker on hand-made histories: it accepts what is legal and names
what is not, with a minimal failing sub-history."""

from __future__ import annotations

import math

from kvnode.cluster.checker import (
    INDETERMINATE_WINDOW,
    check_history,
    linearizable,
    lost_writes,
    settle_observed_writes,
)
from kvnode.cluster.history import FAIL, INFO, OK, Op

_ids = iter(range(1_000_000))


def op(kind: str, start: float, end: float | None, outcome: str = OK, **kw: object) -> Op:
    return Op(
        id=next(_ids),
        process=int(kw.pop("p", 0)),  # type: ignore[arg-type]
        kind=kind,
        key="k",
        invoke=start,
        complete=math.inf if end is None else end,
        outcome=outcome,
        **kw,  # type: ignore[arg-type]
    )


def put(start: float, end: float | None, value: str, outcome: str = OK, **kw: object) -> Op:
    return op("put", start, end, outcome, value=value, result="applied", **kw)


def get(start: float, end: float, value: str | None, **kw: object) -> Op:
    return op("get", start, end, value=value, **kw)


def verdict(ops: list[Op]):
    (result,) = check_history(ops)
    return result


def test_sequential_and_concurrent_legal_histories_pass() -> None:
    history = [
        put(0, 1, "a"),
        get(2, 3, "a"),
        put(4, 8, "b", p=1),
        get(5, 6, "a", p=2),  # concurrent with the put: may still see "a"
        get(7, 9, "b", p=2),
        op("cas", 10, 11, prev="b", value="c", result="applied"),
        op("cas", 12, 13, prev="b", value="d", result="compare_failed"),
        get(14, 15, "c"),
        op("delete", 16, 17, result="applied"),
        op("delete", 18, 19, result="not_found"),
        get(20, 21, None),
    ]
    assert verdict(history).linearizable


def test_indeterminate_writes_may_or_may_not_have_happened() -> None:
    happened = [put(0, 1, "a"), put(2, None, "b", INFO), get(5, 6, "b")]
    did_not = [put(0, 1, "a"), put(2, None, "b", INFO), get(5, 6, "a")]
    assert verdict(happened).linearizable and verdict(did_not).linearizable


def test_failed_operations_carry_no_effect() -> None:
    assert verdict([put(0, 1, "a"), put(2, 3, "b", FAIL), get(4, 5, "a")]).linearizable


def test_a_write_answered_503_that_is_later_observed_is_reported() -> None:
    """503 promises "not applied" (README guarantee 4): a read of its value is a violation."""
    history = [put(0, 1, "a"), put(2, 3, "b", FAIL), get(4, 5, "b")]
    result = verdict(history)
    assert not result.linearizable
    assert any(o.kind == "put" and o.value == "b" for o in result.minimal) or any(
        o.kind == "get" and o.value == "b" for o in result.minimal
    )


def test_stale_read_is_reported_with_a_minimal_sub_history() -> None:
    history = [put(0, 1, "a"), get(1.5, 1.8, "a"), put(2, 3, "b"), get(4, 5, "a"), get(6, 7, "b")]
    result = verdict(history)
    assert not result.linearizable
    assert [(o.kind, o.value) for o in result.minimal] == [("put", "b"), ("get", "a")] or [
        (o.kind, o.value) for o in result.minimal
    ] == [("put", "a"), ("put", "b"), ("get", "a")]


def test_lost_acknowledged_write_is_reported() -> None:
    history = [put(0, 1, "a"), put(2, 3, "b"), get(4, 5, None)]
    result = verdict(history)
    assert not result.linearizable and len(result.minimal) <= 2
    assert lost_writes(history, {"k": None}) == [history[1]]
    assert lost_writes(history, {"k": "b"}) == []


def test_failed_cas_that_took_effect_is_reported() -> None:
    history = [
        put(0, 1, "a"),
        op("cas", 2, 3, prev="zzz", value="c", result="compare_failed"),
        get(4, 5, "c"),
    ]
    result = verdict(history)
    assert not result.linearizable
    assert any(o.kind == "cas" for o in result.minimal)


def test_read_of_a_value_never_written_is_reported() -> None:
    result = verdict([put(0, 1, "a"), get(2, 3, "ghost")])
    assert not result.linearizable and [o.value for o in result.minimal] == ["ghost"]


def test_resurrected_deleted_key_is_reported() -> None:
    history = [put(0, 1, "a"), op("delete", 2, 3, result="applied"), get(4, 5, "a")]
    result = verdict(history)
    assert not result.linearizable and len(result.minimal) == 3


def test_ttl_values_may_vanish_after_their_deadline_only() -> None:
    early = [put(0, 1, "a", ttl=10.0, expire_at=10.5), get(2, 3, None)]
    late = [put(0, 1, "a", ttl=10.0, expire_at=10.5), get(11, 12, None)]
    stale_after_expiry = [put(0, 1, "a", ttl=1.0, expire_at=1.5), get(3, 4, "a")]
    assert not verdict(early).linearizable
    assert verdict(late).linearizable
    assert not verdict(stale_after_expiry).linearizable


def test_many_concurrent_processes_check_quickly() -> None:
    history = []
    for i in range(300):
        start = i * 0.01
        history.append(put(start, start + 0.05, f"v{i}", p=i % 10))
        history.append(get(start + 0.001, start + 0.06, f"v{max(0, i - 1)}", p=10 + i % 10))
    ok, _ = linearizable(history)
    assert ok


def test_an_observed_indeterminate_write_took_effect_before_its_first_observer() -> None:
    history = [put(0, None, "b", INFO), get(5, 6, "b"), get(7, 9, "b", p=1)]
    settled = settle_observed_writes(history)
    assert (settled[0].outcome, settled[0].complete) == (OK, 6)
    assert verdict(history).linearizable


def test_an_indeterminate_delete_may_take_effect_long_after_it_was_sent() -> None:
    late = INDETERMINATE_WINDOW * 3  # beyond the quick checks' window: the exact search decides
    history = [
        put(0, 1, "a"),
        op("delete", 2, None, INFO),
        get(late, late + 1, "a"),
        get(late + 2, late + 3, None),
    ]
    assert verdict(history).linearizable
    resurrected = [*history, get(late + 4, late + 5, "a")]
    assert not verdict(resurrected).linearizable


def test_a_long_run_with_many_indeterminate_operations_is_decided() -> None:
    """Each indeterminate delete below is needed to explain a later "not found", and each
    indeterminate put is read back, so no quick check may simply leave them out."""
    history = []
    for i in range(400):
        t = i * 1.0
        history.append(put(t, t + 0.1, f"v{i}", p=i % 5))
        if i % 4 == 0:
            history.append(op("delete", t + 0.2, None, INFO, p=5 + i % 3))
            history.append(get(t + 0.5, t + 0.6, None, p=8))
        elif i % 4 == 1:
            history.append(put(t + 0.2, None, f"w{i}", INFO, p=5 + i % 3))
            history.append(get(t + 0.5, t + 0.6, f"w{i}", p=8))
        else:
            history.append(get(t + 0.5, t + 0.6, f"v{i}", p=8))
    result = verdict(history)
    assert result.linearizable, result.reason
