"""Property test: StateMachine behaves like a plain dict model, across reopen and checkpoints."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvnode.storage.machine import Entry, StateMachine
from tests.unit.storage.conftest import assert_matches_model
from tests.unit.storage.model import KEYS, VALUES, Model, encode

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)
times = st.integers(-50, 300)  # relative to the previous command: clocks mostly advance
deadlines = st.one_of(st.just(0), st.integers(1, 3_000))  # relative TTL
CURRENT = "current"  # resolved when applied: the key's current value or revision
conditions = st.one_of(
    st.tuples(st.just("exist"), st.booleans()),
    st.tuples(st.just("value"), st.one_of(values, st.just(CURRENT))),
    st.tuples(st.just("revision"), st.one_of(st.integers(0, 40), st.just(CURRENT))),
)


def resolve(op: tuple, model: Model, clock: int) -> tuple:
    """Make relative times absolute and replace a CURRENT expectation with what the key
    holds now (so CAS often succeeds)."""
    issued = max(0, clock + op[-1])
    if op[0] in ("put", "cas") and op[3]:
        op = (*op[:3], issued + op[3], *op[4:])
    op = (*op[:-1], issued)
    if op[0] not in ("cas", "cdelete") or op[-2] != CURRENT:
        return op
    record = model.get(op[1], model.clock)
    if op[-3] == "value":
        expected: object = record.value if record else b"-"
    else:
        expected = record.mod_revision if record else 0
    return (*op[:-2], expected, op[-1])


operations = st.one_of(
    st.tuples(st.just("put"), keys, values, deadlines, times),
    st.tuples(st.just("delete"), keys, times),
    st.tuples(st.just("expire"), times),
    st.builds(
        lambda k, v, d, c, t: ("cas", k, v, d, *c, t), keys, values, deadlines, conditions, times
    ),
    st.builds(lambda k, c, t: ("cdelete", k, *c, t), keys, conditions, times),
)
steps = st.lists(
    st.one_of(
        st.lists(operations, min_size=1, max_size=6).map(lambda ops: ("batch", ops)),
        st.sampled_from([("reopen", "close"), ("reopen", "crash"), ("checkpoint", None)]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, checkpoint_entries=st.integers(1, 12))
def test_state_machine_matches_dict_model(steps: list, checkpoint_entries: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "sm"

        def open_machine() -> StateMachine:
            return StateMachine(directory, checkpoint_entries=checkpoint_entries)

        machine, model, index, clock = open_machine(), Model(), 0, 0
        for kind, arg in steps:
            if kind == "batch":
                entries = []
                for unresolved in arg:
                    op = resolve(unresolved, model, clock)
                    clock = op[-1]
                    index += 1
                    model.apply(op)
                    entries.append(Entry(index, 1, encode(op)))
                machine.apply(entries)
            elif kind == "checkpoint":
                machine.checkpoint()
            else:
                machine.close(checkpoint=arg == "close")
                machine = open_machine()
            assert machine.last_applied == index
            assert_matches_model(machine, model)
        machine.close()
