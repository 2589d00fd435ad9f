"""The lease table of a key space: leases, their deadlines and the keys attached to them.

It only keeps the books; `Keyspace` decides when a lease is granted, kept
alive, revoked or expired (always by a replicated command, so every replica
removes a lease's keys at the same revision).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sortedcontainers import SortedList

from kvnode.storage.record import Lease


class LeaseTable:
    def __init__(self, leases: Iterable[tuple[int, Lease]] = ()) -> None:
        self._leases: dict[int, Lease] = dict(leases)
        self._keys: dict[int, set[str]] = {lease_id: set() for lease_id in self._leases}
        self._deadlines: SortedList[tuple[int, int]] = SortedList(
            (lease.expire_at_ms, lease_id) for lease_id, lease in self._leases.items()
        )

    def __len__(self) -> int:
        return len(self._leases)

    def items(self) -> Iterator[tuple[int, Lease]]:
        return iter(sorted(self._leases.items()))

    def get(self, lease_id: int) -> Lease | None:
        return self._leases.get(lease_id)

    def live(self, lease_id: int, now_ms: int) -> Lease | None:
        """The lease if it exists and its deadline is still ahead of `now_ms`."""
        lease = self._leases.get(lease_id)
        return lease if lease is not None and lease.expire_at_ms > now_ms else None

    def keys(self, lease_id: int) -> list[str]:
        return sorted(self._keys.get(lease_id, ()))

    def set(self, lease_id: int, lease: Lease) -> None:
        """Grant `lease_id`, or move its deadline."""
        old = self._leases.get(lease_id)
        if old is not None:
            self._deadlines.remove((old.expire_at_ms, lease_id))
        self._leases[lease_id] = lease
        self._keys.setdefault(lease_id, set())
        self._deadlines.add((lease.expire_at_ms, lease_id))

    def remove(self, lease_id: int) -> list[str]:
        """Forget the lease; returns the keys that were attached to it (still stored)."""
        lease = self._leases.pop(lease_id)
        self._deadlines.remove((lease.expire_at_ms, lease_id))
        return sorted(self._keys.pop(lease_id, ()))

    def due(self, now_ms: int) -> list[int]:
        """The leases whose deadline is at or before `now_ms`, earliest first."""
        due = self._deadlines.irange(maximum=(now_ms, 2**64))
        return [lease_id for _deadline, lease_id in due]

    def next_deadline(self) -> int | None:
        return self._deadlines[0][0] if self._deadlines else None

    def attach(self, key: str, lease_id: int) -> None:
        self._keys[lease_id].add(key)

    def detach(self, key: str, lease_id: int) -> None:
        self._keys.get(lease_id, set()).discard(key)
