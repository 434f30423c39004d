"""The stored stream events of chats (chat/eventlog.py owns what they mean)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from workdock.chat.store.models import ChatEvent, utcnow
from workdock.chat.store.repo import Store

Row = tuple[str, int, str]  # chat id, seq, JSON payload


class EventRows:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def insert(self, rows: Sequence[Row]) -> list[str]:
        """Store a batch in one transaction; the chats whose rows were dropped because the chat is
        gone (deleted while its events waited)."""
        now = utcnow()
        values = [
            {"chat_id": chat_id, "seq": seq, "data": data, "stored_at": now} for chat_id, seq, data in rows
        ]

        def run(connection: Connection) -> None:
            connection.execute(insert(ChatEvent), values)

        try:
            await self.store.write(run)
            return []
        except IntegrityError:
            pass
        # One chat of the batch is gone (a foreign key): store the others chat by chat.
        gone: list[str] = []
        for chat_id in dict.fromkeys(row[0] for row in rows):
            mine = [v for v in values if v["chat_id"] == chat_id]

            def run_one(connection: Connection, mine: list[dict[str, object]] = mine) -> None:
                connection.execute(insert(ChatEvent), mine)

            try:
                await self.store.write(run_one)
            except IntegrityError:
                gone.append(chat_id)
        return gone

    async def read(
        self, chat_id: str, after: int, *, upto: int | None = None, limit: int = 500
    ) -> list[tuple[int, str]]:
        query = select(ChatEvent.seq, ChatEvent.data).where(
            ChatEvent.chat_id == chat_id, ChatEvent.seq > after
        )
        if upto is not None:
            query = query.where(ChatEvent.seq <= upto)
        async with self.store.sessions() as s:
            result = await s.execute(query.order_by(ChatEvent.seq).limit(limit))
            return [(row.seq, row.data) for row in result]

    async def bounds(self, chat_id: str) -> tuple[int | None, int | None]:
        """The first and last stored seq of the chat (None, None when it has none)."""
        async with self.store.sessions() as s:
            row = (
                await s.execute(
                    select(func.min(ChatEvent.seq), func.max(ChatEvent.seq)).where(
                        ChatEvent.chat_id == chat_id
                    )
                )
            ).one()
        return row[0], row[1]
