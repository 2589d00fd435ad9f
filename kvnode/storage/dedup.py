"""The replicated table of recent request ids, which makes retried writes exactly-once.

A client that gets no answer (timeout, leader lost) cannot know whether its
write was applied, and PySyncObj may even report a failure for a command it
applied. So every write may carry a request id; the first application under
an id records its outcome here, and any later command with the same id
returns that outcome without changing anything (the same revision, the same
CAS verdict). An id is bound to what its request asked for (a fingerprint):
a different request under a used id is refused, not answered with the first
one's outcome.

The table lives in the key space, so it is rebuilt by WAL replay and carried
in checkpoints and snapshots. It is bounded deterministically, from the log
alone: an id is forgotten once DEDUP_MAX_ENTRIES newer ids were recorded, once the
replies kept (a transaction's) pass DEDUP_MAX_REPLY_BYTES, or once the log clock
has moved DEDUP_WINDOW_MS past the time it was issued (checked at every command
applied, with or without an id, so the table empties on its own). A client must
therefore retry within that window.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kvnode.storage.outcome import Outcome

DEDUP_MAX_ENTRIES = 100_000
DEDUP_WINDOW_MS = 10 * 60 * 1000
DEDUP_MAX_REPLY_BYTES = 64 * 1024 * 1024  # of transaction replies kept for their retries


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    index: int
    issued_at_ms: int
    outcome: Outcome
    fingerprint: bytes = b""  # of the request first applied under this id (commands.py)


class RequestLog:
    def __init__(self, records: Iterable[RequestRecord] = ()) -> None:
        self._by_id: OrderedDict[str, RequestRecord] = OrderedDict(
            (record.request_id, record) for record in records
        )
        self._reply_bytes = sum(len(record.outcome.detail) for record in self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self._by_id.values())

    def get(self, request_id: str) -> RequestRecord | None:
        return self._by_id.get(request_id)

    def record(self, record: RequestRecord, log_clock_ms: int) -> None:
        self._by_id[record.request_id] = record
        self._reply_bytes += len(record.outcome.detail)
        while (
            len(self._by_id) > DEDUP_MAX_ENTRIES or self._reply_bytes > DEDUP_MAX_REPLY_BYTES
        ) and len(self._by_id) > 1:
            self._forget_oldest()
        self.expire(log_clock_ms)

    def expire(self, log_clock_ms: int) -> None:
        """Forget the ids issued more than DEDUP_WINDOW_MS before the log clock (oldest
        first: the table is in the order ids were recorded)."""
        oldest_kept = log_clock_ms - DEDUP_WINDOW_MS
        while self._by_id and next(iter(self._by_id.values())).issued_at_ms < oldest_kept:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _request_id, record = self._by_id.popitem(last=False)
        self._reply_bytes -= len(record.outcome.detail)
