"""Shared helpers for the storage tests."""

from __future__ import annotations

from kvnode.storage.machine import StateMachine
from tests.unit.storage.model import KEYS, Model


def assert_matches_model(machine: StateMachine, model: Model) -> None:
    """Every read the contract defines gives the same answer from both, at several times."""
    for now in (0, model.clock, model.clock + 500, model.clock + 10_000):
        for key in KEYS:
            got = machine.read(key, now)[0]
            want = model.get(key, now)
            if want is None:
                assert got is None, (key, now, got)
            else:
                assert got is not None, (key, now, want)
                assert (got.value, got.create_revision, got.mod_revision, got.expire_at_ms) == (
                    want.value,
                    want.create_revision,
                    want.mod_revision,
                    want.expire_at_ms,
                ), (key, now)
        listed = [key for key, _ in machine.scan("dir/", now)[0]]
        assert listed == sorted(k for k in KEYS if k.startswith("dir/") and model.get(k, now))
