"""Operation histories recorded by the chaos workload and judged by the checker.

Every operation has an invoke and a complete time (monotonic seconds) and an
outcome: `ok` (the response says what happened), `fail` (certainly not
applied: a 4xx other than a compare failure, or a 503) or `info`
(indeterminate: a timeout, a 504 or any other 5xx, a connection lost after sending).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import orjson

OK, FAIL, INFO = "ok", "fail", "info"
WRITE_KINDS = frozenset({"put", "cas", "delete"})


@dataclass
class Op:
    """One client operation on one key.

    kind: put | get | delete | cas.
    value: the value written (put/cas) or read (get; None = absent).
    prev: the compared value for cas.
    result: for ok writes "applied" / "compare_failed" / "not_found".
    revision: for ok applied writes, the revision the node acknowledged.
    """

    id: int
    process: int
    kind: str
    key: str
    value: str | None = None
    prev: str | None = None
    ttl: float | None = None
    invoke: float = 0.0
    complete: float = math.inf
    outcome: str = INFO
    result: str | None = None
    expire_at: float | None = None  # monotonic seconds, for ttl puts
    error: str | None = None  # the error code of a fail/info answer, for diagnosis
    revision: int | None = None  # the revision an ok applied write was acknowledged at

    @property
    def is_write(self) -> bool:
        return self.kind in WRITE_KINDS

    def describe(self) -> str:
        target = f"{self.kind} {self.key}"
        if self.kind == "cas":
            target += f" {self.prev!r}->{self.value!r}"
        elif self.kind == "put":
            target += f" {self.value!r}" + (f" ttl={self.ttl:g}" if self.ttl else "")
        read = f" -> {self.value!r}" if self.kind == "get" else ""
        end = "?" if math.isinf(self.complete) else f"{self.complete:.3f}"
        result = f" {self.result}" if self.result else ""
        error = f" ({self.error})" if self.error else ""
        return (
            f"#{self.id} p{self.process} [{self.invoke:.3f}, {end}] {target}{read} "
            f"{self.outcome}{result}{error}"
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Op:
        """The inverse of `to_json` (a saved history read back for re-checking)."""
        fields = dict(data)
        if fields.get("complete") is None:
            fields["complete"] = math.inf
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if math.isinf(self.complete):
            data["complete"] = None
        return data


def load_history(raw: bytes) -> list[Op]:
    """A history saved by `kvnode chaos --history`; ValueError if `raw` is not one."""
    try:
        items = orjson.loads(raw)
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ValueError("expected a JSON list of operations")
        return [Op.from_json(item) for item in items]
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise ValueError(str(exc)) from exc
