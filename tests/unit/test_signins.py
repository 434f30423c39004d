"""The chat server's record of web sign-ins waiting for their callback: once, for one user, for
a while, and only so many."""

from __future__ import annotations

from workdock.chat.signins import PendingSignIns


def test_a_state_is_taken_once_and_only_by_the_user_who_started_it() -> None:
    signins = PendingSignIns()
    signins.add("s1", "alice", "ws", "github")
    assert signins.take("s1", "mallory") is None  # someone else's session: refused, still waiting
    taken = signins.take("s1", "alice")
    assert taken is not None and (taken.workspace_id, taken.server) == ("ws", "github")
    assert signins.take("s1", "alice") is None  # replayed
    assert signins.take("never", "alice") is None


def test_a_new_start_of_the_same_server_voids_the_earlier_one() -> None:
    signins = PendingSignIns()
    signins.add("old", "alice", "ws", "github")
    signins.add("other", "alice", "ws", "notion")
    signins.add("new", "alice", "ws", "github")
    assert signins.take("old", "alice") is None
    assert signins.take("new", "alice") is not None
    assert signins.take("other", "alice") is not None


def test_records_expire_and_are_bounded() -> None:
    expired = PendingSignIns(ttl=-1.0)  # expired as soon as made
    expired.add("s", "alice", "ws", "github")
    assert expired.take("s", "alice") is None
    bounded = PendingSignIns(limit=3)
    for n in range(5):
        bounded.add(f"s{n}", "alice", "ws", f"server{n}")
    assert len(bounded) == 3
    assert bounded.take("s0", "alice") is None and bounded.take("s4", "alice") is not None
