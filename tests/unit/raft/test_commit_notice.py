"""CommitNotice's rule: a new commit index is sent to the followers at once when one of them
waits for it, otherwise once it has gone untold for the delay; an append-entries message
that carried it to every follower makes the notice unneeded."""

from __future__ import annotations

from kvnode.raft.commit_notice import CommitNotice

FOLLOWERS = ("b", "c")
DELAY = 0.002
PAST = DELAY * 1.01  # a little more than the delay (clear of rounding)


def notice() -> CommitNotice:
    return CommitNotice(delay=DELAY)


def test_a_commit_nobody_waits_for_is_sent_only_after_the_delay() -> None:
    commits = notice()
    assert not commits.due(10, FOLLOWERS, now=1.0)
    assert not commits.due(10, FOLLOWERS, now=1.0 + DELAY / 2)
    assert commits.due(10, FOLLOWERS, now=1.0 + PAST)
    # Once sent, it is not news again.
    assert not commits.due(10, FOLLOWERS, now=1.0 + 3 * DELAY)


def test_the_delay_runs_from_the_oldest_untold_commit() -> None:
    commits = notice()
    assert not commits.due(10, FOLLOWERS, now=1.0)
    assert not commits.due(11, FOLLOWERS, now=1.0 + DELAY * 0.9)
    assert commits.due(12, FOLLOWERS, now=1.0 + PAST)


def test_a_commit_carried_to_every_follower_needs_no_notice() -> None:
    commits = notice()
    assert not commits.due(10, FOLLOWERS, now=1.0)
    commits.told("b", 10)
    commits.told("c", 10)
    assert not commits.due(10, FOLLOWERS, now=1.0 + 2 * DELAY)
    assert commits.wait_at_most(last_index=10) is None  # nothing left to tell: sleep on


def test_a_follower_not_yet_told_gets_the_notice() -> None:
    commits = notice()
    assert not commits.due(10, FOLLOWERS, now=1.0)
    commits.told("b", 10)  # "c" was sent nothing: disconnected, say
    assert commits.due(10, FOLLOWERS, now=1.0 + PAST)


def test_a_follower_waiting_for_a_forwarded_write_is_told_as_soon_as_it_commits() -> None:
    commits = notice()
    commits.told("b", 9)
    commits.told("c", 9)
    commits.awaited_by("b", 11)  # b forwarded the write at index 11
    assert not commits.due(10, FOLLOWERS, now=1.0)  # not committed yet: nothing to say
    assert commits.due(11, FOLLOWERS, now=1.0)
    assert not commits.due(11, FOLLOWERS, now=1.0)  # told: b waits no more


def test_a_follower_already_told_what_it_awaits_needs_no_notice() -> None:
    commits = notice()
    commits.awaited_by("b", 10)
    commits.told("b", 10)
    assert not commits.due(10, FOLLOWERS, now=1.0)


def test_the_tick_sleeps_at_most_the_delay_while_something_may_need_telling() -> None:
    commits = notice()
    commits.told("b", 10)
    commits.told("c", 10)
    assert not commits.due(10, FOLLOWERS, now=1.0)
    assert commits.wait_at_most(last_index=10) is None
    assert commits.wait_at_most(last_index=11) == DELAY  # an entry in flight may commit
    assert not commits.due(11, FOLLOWERS, now=1.0)
    assert commits.wait_at_most(last_index=11) == DELAY  # committed, untold


def test_leading_again_starts_from_nothing_told() -> None:
    commits = notice()
    commits.told("b", 10)
    commits.told("c", 10)
    assert not commits.due(10, FOLLOWERS, now=1.0)
    # Leading again after an election: a follower may have restarted and forgotten.
    commits.start_leading()
    assert not commits.due(10, FOLLOWERS, now=2.0)
    assert commits.due(10, FOLLOWERS, now=2.0 + PAST)


def test_forgetting_a_follower_drops_what_it_awaited() -> None:
    commits = notice()
    commits.told("b", 10)
    commits.told("c", 10)
    commits.awaited_by("b", 11)
    commits.forget("b")
    commits.told("b", 10)  # reconnected, sent the commit index again
    assert not commits.due(11, FOLLOWERS, now=1.0)
