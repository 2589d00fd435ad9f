"""The change history and the hub on their own: retention, the floor, snapshot resets, a
command seen whole or not at all, and watchers that fall behind or lose their window."""

from __future__ import annotations

import asyncio

import pytest

from kvnode.storage.changes import Change
from kvnode.watch.history import Compacted, WatchHistory
from kvnode.watch.hub import WatchHub


def put(revision: int, key: str = "k", value: bytes = b"v") -> Change:
    return Change("put", key, revision, revision, value)


def filled(history: WatchHistory, revisions: range) -> None:
    for revision in revisions:
        history.changed(put(revision, f"k{revision}"))
        history.applied(revision)


def test_the_oldest_changes_go_and_the_floor_follows() -> None:
    history = WatchHistory(capacity=3, capacity_bytes=1 << 20)
    filled(history, range(1, 7))
    with pytest.raises(Compacted) as gone:
        history.since(3)
    assert gone.value.oldest_revision == 4
    assert [c.revision for c in history.since(4).changes] == [4, 5, 6]


def test_the_byte_limit_also_evicts() -> None:
    history = WatchHistory(capacity=1000, capacity_bytes=3 * (100 + 2 + 1000))
    for revision in range(1, 6):
        history.changed(Change("put", "kk", revision, 1, b"x" * 1000))
        history.applied(revision)
    assert [c.revision for c in history.since(history.since(None).floor).changes] == [3, 4, 5]


def test_a_command_whose_changes_are_still_arriving_is_not_read_in_part() -> None:
    history = WatchHistory(capacity=100, capacity_bytes=1 << 20)
    filled(history, range(1, 3))
    history.changed(Change("expire", "a", 3, 1, None))  # revision 3 is not applied yet
    assert [c.revision for c in history.since(1).changes] == [1, 2]
    history.changed(Change("expire", "b", 3, 2, None))
    history.applied(3)
    assert [(c.revision, c.key) for c in history.since(3).changes] == [(3, "a"), (3, "b")]


def test_a_snapshot_reset_empties_the_history_and_raises_the_floor() -> None:
    history = WatchHistory(capacity=100, capacity_bytes=1 << 20)
    filled(history, range(1, 5))
    history.reset(50)
    with pytest.raises(Compacted) as gone:
        history.since(5)
    assert gone.value.oldest_revision == 51
    read = history.since(None)
    assert (read.changes, read.applied) == ([], 50)


def test_a_watcher_whose_changes_were_replaced_by_a_snapshot_is_ended() -> None:
    async def scenario() -> dict[str, object] | None:
        history = WatchHistory(capacity=100, capacity_bytes=1 << 20)
        filled(history, range(1, 3))
        hub = WatchHub(history, max_pending=100)
        watcher = hub.subscribe(prefix="", from_revision=None)
        history.reset(40)  # this node installed a snapshot at 40
        hub.pump()
        return watcher.ended

    ended = asyncio.run(scenario())
    assert ended is not None and ended["error"] == "revision_compacted"
    assert ended["oldest_revision"] == 41


def test_a_watcher_that_falls_too_far_behind_is_ended() -> None:
    async def scenario() -> tuple[int, dict[str, object] | None]:
        history = WatchHistory(capacity=100, capacity_bytes=1 << 20)
        hub = WatchHub(history, max_pending=5)
        slow = hub.subscribe(key="hot", from_revision=None)
        for revision in range(1, 10):
            history.changed(put(revision, "hot"))
            history.applied(revision)
        hub.pump()
        return len(slow.pending), slow.ended

    pending, ended = asyncio.run(scenario())
    assert ended is not None and ended["error"] == "watcher_too_slow" and pending > 5


def test_the_hub_wakes_only_the_watchers_of_the_changed_key() -> None:
    async def scenario() -> tuple[list[int], list[int], list[int]]:
        history = WatchHistory(capacity=100, capacity_bytes=1 << 20)
        hub = WatchHub(history, max_pending=100)
        mine = hub.subscribe(key="a", from_revision=None)
        other = hub.subscribe(key="b", from_revision=None)
        under = hub.subscribe(prefix="a", from_revision=None)
        history.changed(put(1, "a"))
        history.changed(put(1, "ab"))
        history.applied(1)  # its notification schedules the pump on this loop
        await mine.wait(5)
        await under.wait(5)
        return (
            [c.revision for c in mine.take().changes],
            [c.revision for c in other.take().changes],
            [c.revision for c in under.take().changes],
        )

    mine, other, under = asyncio.run(scenario())
    assert (mine, other, under) == ([1], [], [1, 1])
