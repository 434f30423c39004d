"""The lease rows themselves, on both databases: a chat is claimed by one replica at a time, held
while renewed, free once lapsed, kept while messages wait, and a replica that lost it writes
nothing more of its turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.helpers import wait_until
from workdock.chat.store.db import create_engine, migrate, sqlite_url
from workdock.chat.store.leases import EVENT_BLOCK, Leases
from workdock.chat.store.repo import LeaseLost, NewMessage, Store
from workdock.secretbox import SecretBox, new_key, parse_key

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "leases.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    box = SecretBox(parse_key(new_key()))
    await migrate(engine, box)
    store = Store(engine, box)
    yield store
    store.close()
    await engine.dispose()


async def _chats_with_messages(store: Store, count: int) -> list[str]:
    user = await store.create_user("u")
    workspace = await store.create_workspace(user.id, "w", "http://127.0.0.1:9", "t")
    chats = []
    for i in range(count):
        chat = await store.create_chat(user.id, workspace.id, title=None, model=None)
        await store.enqueue(chat.id, f"message {i}")
        chats.append(chat.id)
    return chats


async def test_replicas_claiming_at_once_each_get_different_chats(store: Store) -> None:
    chats = await _chats_with_messages(store, 12)
    leases = Leases(store, ttl=30)
    claims = await asyncio.gather(*(leases.claim(f"replica-{i}", limit=12) for i in range(3)))
    claimed = [c.chat_id for claim in claims for c in claim]
    assert sorted(claimed) == sorted(chats)  # every chat once: none twice, none left
    assert await leases.claim("replica-9", limit=12) == []  # all held
    assert all(c.first_seq == 1 and c.status == "idle" for claim in claims for c in claim)


async def test_a_lease_is_held_while_renewed_and_free_once_it_lapses(store: Store) -> None:
    [chat_id] = await _chats_with_messages(store, 1)
    short = Leases(store, ttl=3)
    [claim] = await short.claim("a", limit=5)
    assert await short.renew("a") == {chat_id}
    assert await short.claim("b", limit=5) == []
    # Not renewed: after the lease's length another replica takes it, above a's reserved numbers.
    taken = await wait_until(lambda: short.claim("b", limit=5), timeout=20, interval=0.5, message="lapse")
    assert [c.chat_id for c in taken] == [chat_id] and taken[0].first_seq == claim.first_seq + EVENT_BLOCK
    assert await short.renew("a") == set()
    with pytest.raises(LeaseLost):  # a's step writes are refused: b holds the chat
        await store.add_messages(
            chat_id, [NewMessage("assistant", [{"type": "text", "text": "x"}])], owner="a"
        )
    with pytest.raises(LeaseLost):
        await store.start_next_turn(chat_id, owner="a", turn_seq=5)
    assert await store.has_queue(chat_id)  # the refused start left the message queued


async def test_a_chat_is_given_back_only_once_its_queue_is_empty(store: Store) -> None:
    [chat_id] = await _chats_with_messages(store, 1)
    leases = Leases(store, ttl=30)
    [claim] = await leases.claim("a", limit=1)
    assert await leases.release(chat_id, "a", last_seq=claim.first_seq) is False  # a message waits
    start = await store.start_next_turn(chat_id, owner="a", turn_seq=claim.first_seq)
    assert start is not None
    await store.add_messages(chat_id, [NewMessage("assistant", [{"type": "text", "text": "y"}])], owner="a")
    assert await leases.release(chat_id, "a", last_seq=claim.first_seq + 4) is True
    chat = await store.get_chat(chat_id)
    assert chat is not None and chat.lease_owner is None and chat.event_seq == claim.first_seq + 4
    with pytest.raises(LeaseLost):
        await leases.release(chat_id, "a", last_seq=None)
    # The next holder goes on right after the last number used.
    await store.enqueue(chat_id, "again")
    [again] = await leases.claim("b", limit=1)
    assert again.first_seq == claim.first_seq + 5


async def test_earlier_lives_leases_lapse_at_once(store: Store) -> None:
    chats = await _chats_with_messages(store, 2)
    leases = Leases(store, ttl=30)
    assert len(await leases.claim("old-life", limit=1)) == 1
    assert len(await leases.claim("someone-else", limit=1)) == 1
    await leases.expire(["old-life"], keep="new-life")
    [claim] = await leases.claim("new-life", limit=5)
    held = await leases.renew("someone-else")
    assert claim.chat_id in chats and claim.chat_id not in held and len(held) == 1


async def test_a_turns_start_prunes_only_old_events_from_before_the_previous_turn(store: Store) -> None:
    from sqlalchemy import select, update

    from workdock.chat.store.events import EventRows
    from workdock.chat.store.models import ChatEvent, utcnow
    from workdock.chat.store.repo import EVENTS_KEPT

    (chat_id,) = await _chats_with_messages(store, 1)
    leases = Leases(store, ttl=30)
    assert len(await leases.claim("a", limit=1)) == 1
    rows = EventRows(store)
    # Three turns of three events each: seq 1-3, 4-6, 7-9.
    for turn_start in (1, 4, 7):
        if turn_start > 1:
            await store.enqueue(chat_id, "again")
        assert await store.start_next_turn(chat_id, owner="a", turn_seq=turn_start) is not None
        await rows.insert([(chat_id, seq, "{}") for seq in range(turn_start, turn_start + 3)])

    async def stored() -> list[int]:
        async with store.sessions() as s:
            return list((await s.scalars(select(ChatEvent.seq).order_by(ChatEvent.seq))).all())

    # Turn 3 started: turn 1 is before the previous turn, but fresh (a watcher may be behind).
    assert await stored() == list(range(1, 10))
    async with store.sessions.begin() as s:  # turns 1 and 2 stored long ago
        await s.execute(
            update(ChatEvent).where(ChatEvent.seq < 7).values(stored_at=utcnow() - EVENTS_KEPT * 2)
        )
    await store.enqueue(chat_id, "fourth")
    assert await store.start_next_turn(chat_id, owner="a", turn_seq=10) is not None
    # Turn 4 starts: turn 3 (the previous one) stays; turns 1 and 2 were old: gone.
    assert await stored() == [7, 8, 9]
