"""The in-memory key space and the deterministic rules that change it.

`Keyspace.execute` is the single place where a command's outcome is decided.
It is called at apply time and again on WAL replay, with the same inputs in
the same order, so every replica and every recovery reaches the same answer.
It reads no clock: time comes only from the commands themselves.

Time and TTL: each command carries its proposer's clock (`issued_at_ms`). The
key space keeps a *log clock*, the largest such time seen so far in the log;
it only moves forward. At apply time a key whose deadline is at or before the
log clock counts as absent (so a CAS against it fails as if it were deleted,
and a PUT over it creates it anew). Physical removal happens only when an
`Expire` command is applied.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from sortedcontainers import SortedDict, SortedList

from kvnode.commands_pb2 import Command, Condition
from kvnode.storage.changes import Change, ChangeKind
from kvnode.storage.dedup import RequestLog, RequestRecord
from kvnode.storage.outcome import Outcome, Status


class KeyRecord(NamedTuple):
    value: bytes
    create_revision: int
    mod_revision: int
    expire_at_ms: int  # 0 = no deadline

    def expired(self, now_ms: int) -> bool:
        return self.expire_at_ms != 0 and self.expire_at_ms <= now_ms


_DIGEST_ITEM = struct.Struct("<IIQQQ")


class Keyspace:
    def __init__(
        self,
        items: Iterable[tuple[str, KeyRecord]] = (),
        log_clock_ms: int = 0,
        requests: Iterable[RequestRecord] = (),
    ) -> None:
        self._data: SortedDict[str, KeyRecord] = SortedDict(items)
        self.requests = RequestLog(requests)
        self._deadlines: SortedList[tuple[int, str]] = SortedList(
            (record.expire_at_ms, key) for key, record in self._data.items() if record.expire_at_ms
        )
        self.log_clock_ms = log_clock_ms
        # Told of every change execute makes (see kvnode.storage.changes).
        self.on_change: Callable[[Change], None] = _ignore

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> Iterator[tuple[str, KeyRecord]]:
        """Every stored key, including ones past their deadline but not yet expired by the log."""
        return iter(self._data.items())

    def get(self, key: str, now_ms: int) -> KeyRecord | None:
        record = self._data.get(key)
        if record is None or record.expired(now_ms):
            return None
        return record

    def scan(
        self, prefix: str, now_ms: int, start_after: str = ""
    ) -> Iterator[tuple[str, KeyRecord]]:
        """Live keys starting with `prefix`, in key order, after `start_after` if given."""
        if start_after and start_after >= prefix:
            keys = self._data.irange(minimum=start_after, inclusive=(False, True))
        else:
            keys = self._data.irange(minimum=prefix)
        for key in keys:
            if not key.startswith(prefix):
                return
            record = self._data[key]
            if not record.expired(now_ms):
                yield key, record

    def next_deadline(self) -> int | None:
        return self._deadlines[0][0] if self._deadlines else None

    def digest(self) -> str:
        """A hash of every stored key, equal on replicas that applied the same log prefix."""
        h = hashlib.sha256()
        for key, record in self._data.items():
            encoded = key.encode()
            h.update(
                _DIGEST_ITEM.pack(
                    len(encoded),
                    len(record.value),
                    record.create_revision,
                    record.mod_revision,
                    record.expire_at_ms,
                )
            )
            h.update(encoded)
            h.update(record.value)
        return h.hexdigest()

    # -- applying commands -------------------------------------------------

    def execute(self, index: int, command: Command) -> Outcome:
        """Apply one decoded command at Raft `index` and return its outcome. Never raises."""
        self.log_clock_ms = max(self.log_clock_ms, command.issued_at_ms)
        request_id = command.request_id
        if request_id:
            earlier = self.requests.get(request_id)
            if earlier is not None:
                given = command.request_fingerprint
                if earlier.fingerprint and given and given != earlier.fingerprint:
                    return Outcome(Status.REQUEST_ID_REUSED, 0)  # another request: refused
                return earlier.outcome  # a retry of a write that was already applied
            outcome = self._execute(index, command)
            record = RequestRecord(
                request_id, index, command.issued_at_ms, outcome, command.request_fingerprint
            )
            self.requests.record(record, self.log_clock_ms)
            return outcome
        return self._execute(index, command)

    def _execute(self, index: int, command: Command) -> Outcome:
        op = command.WhichOneof("op")
        if op == "put":
            put = command.put
            return self._write(index, put.key, put.value, put.expire_at_ms, None)
        if op == "cas":
            cas = command.cas
            condition = cas.condition if cas.HasField("condition") else None
            return self._write(index, cas.key, cas.value, cas.expire_at_ms, condition)
        if op == "delete":
            delete = command.delete
            condition = delete.condition if delete.HasField("condition") else None
            return self._delete(index, delete.key, condition)
        if op == "expire":
            return self._expire(index, command.expire.now_ms)
        if op == "noop":
            return Outcome(Status.OK, index)
        return Outcome(Status.INVALID, 0)

    def _live(self, key: str) -> KeyRecord | None:
        return self.get(key, self.log_clock_ms)

    def _write(
        self,
        index: int,
        key: str,
        value: bytes,
        expire_at_ms: int,
        condition: Condition | None,
    ) -> Outcome:
        current = self._live(key)
        if condition is not None and not _holds(condition, current):
            return Outcome(Status.COMPARE_FAILED, current.mod_revision if current else 0)
        if expire_at_ms and expire_at_ms <= self.log_clock_ms:
            # Already dead on arrival: storing it would only make a key no one can read.
            self._remove(key, index, "expire")
            return Outcome(Status.OK, index, created=current is None, expire_at_ms=expire_at_ms)
        create_revision = current.create_revision if current else index
        self._store(key, KeyRecord(value, create_revision, index, expire_at_ms))
        self.on_change(Change("put", key, index, create_revision, value))
        return Outcome(Status.OK, index, created=current is None, expire_at_ms=expire_at_ms)

    def _delete(self, index: int, key: str, condition: Condition | None) -> Outcome:
        current = self._live(key)
        if condition is not None and not _holds(condition, current):
            return Outcome(Status.COMPARE_FAILED, current.mod_revision if current else 0)
        # A dead-but-unexpired record goes too (it can never be read again): to a watcher,
        # that is its expiry.
        self._remove(key, index, "expire" if current is None else "delete")
        if current is None:
            return Outcome(Status.NOT_FOUND, 0)
        return Outcome(Status.OK, index)

    def _expire(self, index: int, now_ms: int) -> Outcome:
        self.log_clock_ms = max(self.log_clock_ms, now_ms)
        while self._deadlines and self._deadlines[0][0] <= now_ms:
            _deadline, key = self._deadlines[0]
            self._remove(key, index, "expire")
        return Outcome(Status.OK, index)

    def _store(self, key: str, record: KeyRecord) -> None:
        old = self._data.get(key)
        if old is not None and old.expire_at_ms:
            self._deadlines.remove((old.expire_at_ms, key))
        self._data[key] = record
        if record.expire_at_ms:
            self._deadlines.add((record.expire_at_ms, key))

    def _remove(self, key: str, index: int, kind: ChangeKind) -> None:
        old = self._data.pop(key, None)
        if old is None:
            return
        if old.expire_at_ms:
            self._deadlines.remove((old.expire_at_ms, key))
        self.on_change(Change(kind, key, index, old.create_revision, None))


def _ignore(change: Change) -> None:
    pass


def _holds(condition: Condition, current: KeyRecord | None) -> bool:
    test = condition.WhichOneof("test")
    if test == "prev_exist":
        return (current is not None) == condition.prev_exist
    if current is None:
        return False
    if test == "prev_value":
        return current.value == condition.prev_value
    if test == "prev_revision":
        return current.mod_revision == condition.prev_revision
    return True  # an empty condition constrains nothing
