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
import itertools
import struct
from collections.abc import Callable, Iterable, Iterator

from sortedcontainers import SortedDict, SortedList

from kvnode.commands_pb2 import Command, Condition, Txn, TxnOp, TxnOpReply, TxnReply
from kvnode.storage.changes import Change, ChangeKind
from kvnode.storage.dedup import RequestLog, RequestRecord
from kvnode.storage.leases import LeaseTable
from kvnode.storage.outcome import MAX_TXN_REPLY_BYTES, Outcome, Status
from kvnode.storage.record import KeyRecord, Lease, Member, Token
from kvnode.storage.txn import holds, key_state

_DIGEST_ITEM = struct.Struct("<IIQQQQ")
# Commands that change no key and no lease's life: they take no revision of their own.
REVISIONLESS = frozenset(
    {
        "noop",
        "member_publish",
        "member_forget",
        "lease_renew_all",
        "cluster_init",
        "token_create",
        "token_revoke",
    }
)
_DIGEST_LEASE = struct.Struct("<QQQ")
REPLY_ITEM_OVERHEAD_BYTES = 32  # a listed key's revisions and deadline


class Keyspace:
    def __init__(
        self,
        items: Iterable[tuple[str, KeyRecord]] = (),
        log_clock_ms: int = 0,
        requests: Iterable[RequestRecord] = (),
        leases: Iterable[tuple[int, Lease]] = (),
        members: Iterable[tuple[str, Member]] = (),
        revision: int = 0,
        cluster_id: str = "",
        tokens: Iterable[tuple[str, Token]] = (),
    ) -> None:
        self._data: SortedDict[str, KeyRecord] = SortedDict(items)
        # About how many bytes the keys and values take (key characters + value bytes):
        # what a space quota is measured against.
        self.data_bytes = sum(_size(key, record) for key, record in self._data.items())
        self.leases = LeaseTable(leases)
        for key, record in self._data.items():
            if record.lease:
                self.leases.attach(key, record.lease)
        self.requests = RequestLog(requests)
        # The member directory, by Raft address (MemberPublish / MemberForget).
        self.members: dict[str, Member] = dict(members)
        self.cluster_id = cluster_id  # set once, by the first ClusterInit ("": not yet)
        # Access tokens by id (TokenCreate / TokenRevoke). Replaced, never changed in
        # place, so the event loop may look a token up while the Raft thread applies.
        self.tokens: dict[str, Token] = dict(tokens)
        self._deadlines: SortedList[tuple[int, str]] = SortedList(
            (record.expire_at_ms, key) for key, record in self._data.items() if record.expire_at_ms
        )
        self.log_clock_ms = log_clock_ms
        # The store revision: one more for every command applied, but for the ones that
        # change no key or lease (see REVISIONLESS). Independent of Raft indexes, so that
        # one log entry can carry several commands (a batch), each at its own revision.
        self.revision = revision
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
        self, prefix: str, now_ms: int, start_after: str = "", end: str = ""
    ) -> Iterator[tuple[str, KeyRecord]]:
        """Live keys starting with `prefix`, in key order, after `start_after` and before
        `end` (exclusive) if given."""
        for key in self.stored_keys(prefix, start_after, end):
            record = self._data[key]
            if not record.expired(now_ms):
                yield key, record

    def stored_keys(self, prefix: str, start_after: str = "", end: str = "") -> Iterator[str]:
        """Stored keys (live or not yet swept) under `prefix`, after `start_after`, before
        `end`: the range of a list, a count or a delete."""
        if start_after and start_after >= prefix:
            keys = self._data.irange(minimum=start_after, inclusive=(False, True))
        else:
            keys = self._data.irange(minimum=prefix)
        for key in keys:
            if not key.startswith(prefix) or (end and key >= end):
                return
            yield key

    def next_deadline(self) -> int | None:
        """The earliest deadline of a key or a lease, if any."""
        deadlines = [
            self.leases.next_deadline(),
            self._deadlines[0][0] if self._deadlines else None,
        ]
        return min((d for d in deadlines if d is not None), default=None)

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
                    record.lease,
                )
            )
            h.update(encoded)
            h.update(record.value)
        for lease_id, lease in self.leases.items():
            h.update(_DIGEST_LEASE.pack(lease_id, lease.ttl_ms, lease.expire_at_ms))
        return h.hexdigest()

    # -- applying commands -------------------------------------------------

    def execute(self, command: Command) -> Outcome:
        """Apply one decoded command at the next revision and return its outcome (with
        `log_index`: the store revision once it is applied). Never raises."""
        self.log_clock_ms = max(self.log_clock_ms, command.issued_at_ms)
        self.requests.expire(self.log_clock_ms)
        request_id = command.request_id
        if request_id:
            earlier = self.requests.get(request_id)
            if earlier is not None:
                given = command.request_fingerprint
                if earlier.fingerprint and given and given != earlier.fingerprint:
                    # Another request under this id: refused.
                    return Outcome(Status.REQUEST_ID_REUSED, 0, log_index=self.revision)
                # A retry of a write that was already applied: its first outcome.
                return _at_log_index(earlier.outcome, self.revision)
            outcome = self._execute_next(command)
            record = RequestRecord(
                request_id,
                self.revision,
                command.issued_at_ms,
                outcome,
                command.request_fingerprint,
            )
            self.requests.record(record, self.log_clock_ms)
            return _at_log_index(outcome, self.revision)
        return _at_log_index(self._execute_next(command), self.revision)

    def _execute_next(self, command: Command) -> Outcome:
        op = command.WhichOneof("op")
        if op not in REVISIONLESS:
            self.revision += 1
        return self._execute(self.revision, op, command)

    def _execute(self, index: int, op: str | None, command: Command) -> Outcome:
        if op == "put":
            put = command.put
            return self._write(index, put.key, put.value, put.expire_at_ms, None, put.lease)
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
        if op == "txn":
            return self._txn(index, command.txn)
        if op == "lease_grant":
            deadline = command.issued_at_ms + command.lease_grant.ttl_ms
            self.leases.set(index, Lease(command.lease_grant.ttl_ms, deadline))
            return Outcome(Status.OK, index, created=True, expire_at_ms=deadline)
        if op == "lease_keepalive":
            return self._keep_alive(index, command.lease_keepalive.id, command.issued_at_ms)
        if op == "lease_revoke":
            return self._revoke(index, command.lease_revoke.id, "delete")
        if op == "lease_renew_all":
            extend = command.lease_renew_all.extend_ms
            for lease_id, lease in list(self.leases.items()):
                deadline = max(lease.expire_at_ms, command.issued_at_ms + lease.ttl_ms + extend)
                self.leases.set(lease_id, lease._replace(expire_at_ms=deadline))
            return Outcome(Status.OK, index)
        if op == "member_publish":
            publish = command.member_publish
            self.members[publish.raft_addr] = Member(publish.node_id, publish.http_url)
            return Outcome(Status.OK, index)
        if op == "member_forget":
            found = self.members.pop(command.member_forget.raft_addr, None)
            return Outcome(Status.OK if found else Status.NOT_FOUND, index if found else 0)
        if op == "cluster_init":
            if not self.cluster_id:
                self.cluster_id = command.cluster_init.cluster_id
            return Outcome(Status.OK, index)
        if op == "token_create":
            create = command.token_create
            taken = create.id in self.tokens or any(
                token.secret_sha256 == create.secret_sha256 for token in self.tokens.values()
            )
            if taken:
                return Outcome(Status.COMPARE_FAILED, 0)  # the id (or secret) is taken
            token = Token(create.secret_sha256, create.role, tuple(create.prefixes))
            self.tokens = {**self.tokens, create.id: token}
            return Outcome(Status.OK, index, created=True)
        if op == "token_revoke":
            if command.token_revoke.id not in self.tokens:
                return Outcome(Status.NOT_FOUND, 0)
            self.tokens = {k: t for k, t in self.tokens.items() if k != command.token_revoke.id}
            return Outcome(Status.OK, index)
        return Outcome(Status.INVALID, 0)

    def _keep_alive(self, index: int, lease_id: int, now_ms: int) -> Outcome:
        lease = self.leases.live(lease_id, self.log_clock_ms)
        if lease is None:
            return Outcome(Status.NOT_FOUND, 0)
        deadline = max(lease.expire_at_ms, now_ms + lease.ttl_ms)
        self.leases.set(lease_id, lease._replace(expire_at_ms=deadline))
        return Outcome(Status.OK, index, expire_at_ms=deadline)

    def _revoke(self, index: int, lease_id: int, kind: ChangeKind) -> Outcome:
        """Remove a lease and all its keys at `index` (revoked: delete events; expired:
        expire events)."""
        if self.leases.get(lease_id) is None:
            return Outcome(Status.NOT_FOUND, 0)
        for key in self.leases.remove(lease_id):
            self._remove(key, index, kind)
        return Outcome(Status.OK, index)

    def _txn(self, index: int, txn: Txn) -> Outcome:
        """Every compare against the state before, then one branch op by op."""
        succeeded = all(holds(compare, self._live(compare.key)) for compare in txn.compare)
        branch = txn.success if succeeded else txn.failure
        for step in branch:
            lease = step.put.lease if step.WhichOneof("op") == "put" else 0
            if lease and self.leases.live(lease, self.log_clock_ms) is None:
                return Outcome(Status.NOT_FOUND, 0)  # a put to a lease that is gone: no-op
        if self._reply_bound(branch) > MAX_TXN_REPLY_BYTES:
            return Outcome(Status.TOO_LARGE, 0)  # refused whole, before any op runs
        reply = TxnReply(succeeded=succeeded)
        for step in branch:
            reply.replies.append(self._txn_op(index, step))
        return Outcome(Status.OK, index, detail=reply.SerializeToString())

    def _reply_bound(self, branch: Iterable[TxnOp]) -> int:
        """At least the size of the reply `branch` would make: what its gets and lists
        would return, counting the branch's own puts (which they see) at full size. Past
        MAX_TXN_REPLY_BYTES it stops counting."""
        puts = {s.put.key: len(s.put.value) for s in branch if s.WhichOneof("op") == "put"}
        bound = 0
        for step in branch:
            kind = step.WhichOneof("op")
            if kind == "get":
                record = self._live(step.get.key)
                stored = len(record.value) if record else 0
                bound += len(step.get.key) + max(stored, puts.get(step.get.key, 0))
            elif kind == "list":
                prefix, end = step.list.prefix, step.list.end
                found = self.scan(prefix, self.log_clock_ms, end=end)
                for key, record in itertools.islice(found, step.list.limit):
                    bound += len(key) + len(record.value) + REPLY_ITEM_OVERHEAD_BYTES
                    if bound > MAX_TXN_REPLY_BYTES:
                        return bound
                bound += sum(
                    len(k) + n
                    for k, n in puts.items()
                    if k.startswith(prefix) and not (end and k >= end)
                )
            if bound > MAX_TXN_REPLY_BYTES:
                return bound
        return bound

    def _txn_op(self, index: int, step: TxnOp) -> TxnOpReply:
        kind = step.WhichOneof("op")
        if kind == "put":
            put = step.put
            written = self._write(index, put.key, put.value, put.expire_at_ms, None, put.lease)
            return TxnOpReply(revision=index, created=written.created)
        if kind == "delete":
            deleted = self._delete(index, step.delete.key, None)
            return TxnOpReply(deleted=int(deleted.status is Status.OK))
        if kind == "delete_prefix":
            doomed = step.delete_prefix
            stored = list(self.stored_keys(doomed.prefix, end=doomed.end))
            deleted_count = 0
            for key in stored:
                deleted_count += self._delete(index, key, None).status is Status.OK
            return TxnOpReply(deleted=deleted_count)
        if kind == "get":
            record = self._live(step.get.key)
            return TxnOpReply(found=[key_state(step.get.key, record)] if record else [])
        if kind == "list":
            limit = step.list.limit
            listed = self.scan(step.list.prefix, self.log_clock_ms, end=step.list.end)
            found = list(itertools.islice(listed, limit + 1))
            return TxnOpReply(
                found=[key_state(key, record) for key, record in found[:limit]],
                more=len(found) > limit,
            )
        return TxnOpReply()

    def _live(self, key: str) -> KeyRecord | None:
        return self.get(key, self.log_clock_ms)

    def _write(
        self,
        index: int,
        key: str,
        value: bytes,
        expire_at_ms: int,
        condition: Condition | None,
        lease: int = 0,
    ) -> Outcome:
        current = self._live(key)
        if condition is not None and not _holds(condition, current):
            return Outcome(Status.COMPARE_FAILED, current.mod_revision if current else 0)
        if lease and self.leases.live(lease, self.log_clock_ms) is None:
            return Outcome(Status.NOT_FOUND, 0)  # the lease is gone: nothing is written
        if expire_at_ms and expire_at_ms <= self.log_clock_ms:
            # Already dead on arrival: storing it would only make a key no one can read.
            self._remove(key, index, "expire")
            return Outcome(Status.OK, index, created=current is None, expire_at_ms=expire_at_ms)
        create_revision = current.create_revision if current else index
        self._store(key, KeyRecord(value, create_revision, index, expire_at_ms, lease))
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
        for lease_id in self.leases.due(now_ms):
            self._revoke(index, lease_id, "expire")
        while self._deadlines and self._deadlines[0][0] <= now_ms:
            _deadline, key = self._deadlines[0]
            self._remove(key, index, "expire")
        return Outcome(Status.OK, index)

    def _store(self, key: str, record: KeyRecord) -> None:
        old = self._data.get(key)
        if old is not None:
            self._untrack(key, old)
            self.data_bytes -= _size(key, old)
        self._data[key] = record
        self.data_bytes += _size(key, record)
        if record.expire_at_ms:
            self._deadlines.add((record.expire_at_ms, key))
        if record.lease:
            self.leases.attach(key, record.lease)

    def _untrack(self, key: str, record: KeyRecord) -> None:
        if record.expire_at_ms:
            self._deadlines.remove((record.expire_at_ms, key))
        if record.lease:
            self.leases.detach(key, record.lease)

    def _remove(self, key: str, index: int, kind: ChangeKind) -> None:
        old = self._data.pop(key, None)
        if old is None:
            return
        self._untrack(key, old)
        self.data_bytes -= _size(key, old)
        self.on_change(Change(kind, key, index, old.create_revision, None))


def _ignore(change: Change) -> None:
    pass


def _at_log_index(outcome: Outcome, log_index: int) -> Outcome:
    """`outcome._replace(log_index=log_index)`, at a third of its cost: every applied
    command goes through here."""
    status, revision, created, expire_at_ms, _old, detail, parts = outcome
    return Outcome(status, revision, created, expire_at_ms, log_index, detail, parts)


def _size(key: str, record: KeyRecord) -> int:
    return len(key) + len(record.value)


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
