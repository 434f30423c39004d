"""All database access of the chat server, one short transaction per method."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import anyio
from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from workdock.chat.store.db import session_factory, sqlite_step_writer
from workdock.chat.store.models import (
    Chat,
    ChatEvent,
    McpServer,
    Message,
    QueuedMessage,
    Setting,
    StepCall,
    Token,
    User,
    Workspace,
    utcnow,
)
from workdock.secretbox import SecretBox, SecretKeyError

logger = logging.getLogger(__name__)
T = TypeVar("T")

TOKEN_CACHE_S = 10.0
EVENTS_KEPT = timedelta(minutes=1)  # a chat's events before its previous turn are kept this long
AGENT_TOKEN_PREFIX = "wdk_"  # an agent link token: opens its workspace's link and nothing else


def _affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (the ORM types its result as a plain ``Result``)."""
    return int(cast(CursorResult[Any], result).rowcount)


def new_id() -> str:
    return uuid.uuid4().hex


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_agent_token() -> str:
    """A link token: 256 random bits (only its SHA-256 is stored, so a fast hash is enough)."""
    return AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewMessage:
    role: str
    parts: list[dict[str, Any]]
    model: str | None = None
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class TurnStart:
    """A turn about to run: its user message, and the messages a retry superseded for it."""

    message: Message
    superseded: list[int]
    # Take up a turn a restart left waiting for an approval (its steps so far are stored).
    resume: bool = False


class LeaseLost(Exception):
    """This replica no longer holds the chat: another one took it over, or it was deleted. Nothing
    more of the turn may be written."""


class RerunRefused(Exception):
    """A retry cannot be queued now; ``message`` and ``detail`` say why, for the user."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def _text_of(message: Message) -> str:
    return "\n".join(p.get("text", "") for p in message.parts if p.get("type") == "text")


async def _last_user_message(session: AsyncSession, chat_id: str) -> Message | None:
    """The user message the chat's last turn ran for (retries re-run it)."""
    return await session.scalar(
        select(Message)
        .where(Message.chat_id == chat_id, Message.role == "user", Message.superseded.is_(False))
        .order_by(Message.id.desc())
        .limit(1)
    )


_MESSAGE_COLUMNS = (
    Message.id,
    Message.chat_id,
    Message.role,
    Message.parts,
    Message.model,
    Message.usage,
    Message.superseded,
    Message.created_at,
)


def _start_next_turn(
    connection: Connection, chat_id: str, owner: str | None, turn_seq: int | None
) -> TurnStart | None:
    """Store.start_next_turn's transaction."""
    chat = connection.execute(select(Chat.lease_owner, Chat.turn_seq).where(Chat.id == chat_id)).first()
    if chat is None or (owner is not None and chat.lease_owner != owner):
        if owner is not None:
            raise LeaseLost(chat_id)
        return None
    while True:
        queued = connection.execute(
            select(QueuedMessage.id, QueuedMessage.content, QueuedMessage.parts, QueuedMessage.rerun_of)
            .where(QueuedMessage.chat_id == chat_id)
            .order_by(QueuedMessage.id)
            .limit(1)
        ).first()
        if queued is None:
            return None
        connection.execute(delete(QueuedMessage).where(QueuedMessage.id == queued.id))
        now = utcnow()
        superseded: list[int] = []
        # The user message to store: a message's parts, or an edit's (None: the retried one stays).
        new_parts: list[dict[str, Any]] | None = queued.parts or [{"type": "text", "text": queued.content}]
        if queued.rerun_of is not None:
            last = connection.execute(
                select(*_MESSAGE_COLUMNS)
                .where(Message.chat_id == chat_id, Message.role == "user", Message.superseded.is_(False))
                .order_by(Message.id.desc())
                .limit(1)
            ).first()
            if last is None or last.id != queued.rerun_of:
                logger.warning("chat %s: a retry of message %s is stale, dropped", chat_id, queued.rerun_of)
                continue
            message = Message(**last._asdict())
            edited = queued.content != _text_of(message)
            # An edit keeps what the message had beside its text (attached resources).
            kept = [p for p in message.parts if p.get("type") != "text"]
            new_parts = [{"type": "text", "text": queued.content}, *kept] if edited else None
            # An edit replaces the user message too: the new text becomes a new message.
            first = last.id if edited else last.id + 1
            later = (Message.chat_id == chat_id, Message.id >= first, Message.superseded.is_(False))
            superseded = list(
                connection.execute(select(Message.id).where(*later).order_by(Message.id)).scalars()
            )
            if superseded:
                connection.execute(update(Message).where(Message.id.in_(superseded)).values(superseded=True))
                connection.execute(
                    update(Chat).where(Chat.id == chat_id).values(history_version=Chat.history_version + 1)
                )
        if new_parts is not None:
            values: dict[str, Any] = {
                "chat_id": chat_id,
                "role": "user",
                "parts": new_parts,
                "model": None,
                "usage": None,
                "superseded": False,
                "created_at": now,
            }
            new_id = connection.execute(insert(Message).values(**values).returning(Message.id)).scalar_one()
            message = Message(id=new_id, **values)
        fields: dict[str, Any] = {"status": "running", "updated_at": now, "pending_step": None}
        if turn_seq is not None:
            fields["turn_seq"] = turn_seq
            # The events before the previous turn go (it is kept for reconnects), once they are old
            # enough that no watcher can still be reading them live.
            connection.execute(
                delete(ChatEvent).where(
                    ChatEvent.chat_id == chat_id,
                    ChatEvent.seq < chat.turn_seq,
                    ChatEvent.stored_at < now - EVENTS_KEPT,
                )
            )
        connection.execute(update(Chat).where(Chat.id == chat_id).values(**fields))
        return TurnStart(message, superseded)


def _write_step(
    connection: Connection,
    chat_id: str,
    values: list[dict[str, Any]],
    fields: dict[str, Any],
    owner: str | None,
) -> list[int]:
    """Insert a step's messages and touch its chat, in the caller's transaction; the new ids in order.

    With ``owner``, only while that replica holds the chat's lease (else ``LeaseLost``, and nothing
    of the step is written): a replica that lost a chat to another must not add to its history.
    """
    ids = (
        [
            row.id
            for row in connection.execute(
                insert(Message).returning(Message.id, sort_by_parameter_order=True), values
            )
        ]
        if values
        else []
    )
    touch = update(Chat).where(Chat.id == chat_id)
    if owner is not None:
        touch = touch.where(Chat.lease_owner == owner)
    if _affected(connection.execute(touch.values(**fields))) == 0 and owner is not None:
        raise LeaseLost(chat_id)
    return ids


class Store:
    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self.engine = engine
        # Seals the secrets the server sends on (agent tokens, MCP header values) on their way in
        # and opens them on their way out: the database only ever holds them sealed.
        self.box = box
        # SQLite: step writes go through a sync engine in one worker-thread hop (see db.py).
        self._step_writer = sqlite_step_writer(engine)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        # token hash → (user, expiry, when cached): every API call authenticates, so the lookup is
        # kept briefly; any token or user deletion clears it, so a revoked token stops at once.
        self._token_cache: dict[str, tuple[User, datetime | None, float]] = {}

    # ---- users and tokens ------------------------------------------------------------------------

    async def count_users(self) -> int:
        async with self.sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(User)) or 0)

    async def create_user(self, name: str, *, is_admin: bool = False) -> User:
        async with self.sessions.begin() as s:
            user = User(id=new_id(), name=name, is_admin=is_admin, created_at=utcnow())
            s.add(user)
        return user

    async def list_users(self) -> Sequence[User]:
        async with self.sessions() as s:
            return (await s.scalars(select(User).order_by(User.created_at))).all()

    async def get_user(self, user_id: str) -> User | None:
        async with self.sessions() as s:
            return await s.get(User, user_id)

    async def get_user_by_name(self, name: str) -> User | None:
        async with self.sessions() as s:
            return await s.scalar(select(User).where(User.name == name))

    def forget_tokens(self) -> None:
        """Drop the cached token lookups (a token or user was deleted, maybe by another replica)."""
        self._token_cache.clear()

    async def delete_user(self, user_id: str) -> bool:
        self._token_cache.clear()
        async with self.sessions.begin() as s:
            return _affected(await s.execute(delete(User).where(User.id == user_id))) > 0

    async def create_token(
        self, user_id: str, name: str, *, kind: str = "api", ttl: timedelta | None = None
    ) -> tuple[Token, str]:
        """A new token; the plain value is returned here and never again."""
        plain = ("wdl_" if kind == "login" else "wd_") + secrets.token_urlsafe(32)
        token = Token(
            id=new_id(),
            user_id=user_id,
            name=name,
            token_hash=hash_token(plain),
            kind=kind,
            created_at=utcnow(),
            expires_at=utcnow() + ttl if ttl else None,
        )
        async with self.sessions.begin() as s:
            s.add(token)
        return token, plain

    async def user_for_token(self, plain: str) -> User | None:
        """The user an API or session token belongs to (login codes are not API tokens)."""
        digest = hash_token(plain)
        cached = self._token_cache.get(digest)
        if cached is not None and time.monotonic() - cached[2] < TOKEN_CACHE_S:
            user, expires_at, _ = cached
            return None if expires_at is not None and expires_at < utcnow() else user
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(User, Token.expires_at)
                    .join(Token, Token.user_id == User.id)
                    .where(Token.token_hash == hash_token(plain), Token.kind != "login")
                )
            ).first()
        if row is None:
            return None
        user, expires_at = row
        if len(self._token_cache) > 10_000:
            self._token_cache.clear()
        self._token_cache[digest] = (user, expires_at, time.monotonic())
        if expires_at is not None and expires_at < utcnow():
            return None
        return user

    async def redeem_login_code(self, plain: str) -> User | None:
        """Use a one-time login code. One ``DELETE … RETURNING`` finds and removes it, so of any
        number of concurrent redemptions exactly one gets the row: the others find nothing."""
        async with self.sessions.begin() as s:
            row = (
                await s.execute(
                    delete(Token)
                    .where(Token.token_hash == hash_token(plain), Token.kind == "login")
                    .returning(Token.user_id, Token.expires_at)
                )
            ).first()
            if row is None:
                return None
            user_id, expires_at = row
            if expires_at is not None and expires_at < utcnow():
                return None
            return await s.get(User, user_id)

    async def list_tokens(self, user_id: str) -> Sequence[Token]:
        async with self.sessions() as s:
            return (
                await s.scalars(
                    select(Token)
                    .where(Token.user_id == user_id, Token.kind == "api")
                    .order_by(Token.created_at)
                )
            ).all()

    async def delete_token(self, token_id: str) -> bool:
        self._token_cache.clear()
        async with self.sessions.begin() as s:
            return _affected(await s.execute(delete(Token).where(Token.id == token_id))) > 0

    async def delete_token_by_value(self, plain: str) -> None:
        self._token_cache.clear()
        async with self.sessions.begin() as s:
            await s.execute(delete(Token).where(Token.token_hash == hash_token(plain)))

    # ---- workspaces --------------------------------------------------------------------------------

    async def create_workspace(
        self, user_id: str, name: str, agent_url: str, agent_token: str, *, path: str | None = None
    ) -> Workspace:
        workspace = Workspace(
            id=new_id(),
            user_id=user_id,
            name=name,
            connection="direct",
            agent_url=agent_url,
            agent_token=self.box.seal(agent_token),
            path=path,
            created_at=utcnow(),
        )
        async with self.sessions.begin() as s:
            s.add(workspace)
        return self._opened_workspace(workspace)

    def _opened_workspace(self, workspace: Workspace) -> Workspace:
        # The object is detached (its session is closed): the opened token is never written back.
        # A linked workspace has none (its agent's token is only kept as a hash).
        if workspace.agent_token is not None:
            workspace.agent_token = self.box.open(workspace.agent_token)
        return workspace

    async def create_linked_workspace(self, user_id: str, name: str) -> tuple[Workspace, str]:
        """A workspace whose agent dials in; its token is returned here and never again."""
        token = new_agent_token()
        workspace = Workspace(
            id=new_id(),
            user_id=user_id,
            name=name,
            connection="link",
            agent_token_hash=hash_token(token),
            created_at=utcnow(),
        )
        async with self.sessions.begin() as s:
            s.add(workspace)
        return workspace, token

    async def rotate_agent_token(self, workspace_id: str) -> str:
        """A new link token for the workspace; the old one stops working with this write."""
        token = new_agent_token()
        await self.update_workspace(workspace_id, agent_token_hash=hash_token(token))
        return token

    async def workspace_for_agent_token(self, plain: str) -> Workspace | None:
        """The linked workspace this agent token opens, or None."""
        if not plain.startswith(AGENT_TOKEN_PREFIX):
            return None
        digest = hash_token(plain)
        async with self.sessions() as s:
            workspace = await s.scalar(
                select(Workspace).where(Workspace.agent_token_hash == digest, Workspace.connection == "link")
            )
        # The lookup is by hash; the comparison that decides is made in constant time all the same.
        if workspace is None or not hmac.compare_digest(workspace.agent_token_hash or "", digest):
            return None
        return workspace

    async def list_workspaces(self, user_id: str) -> Sequence[Workspace]:
        async with self.sessions() as s:
            workspaces = (
                await s.scalars(
                    select(Workspace).where(Workspace.user_id == user_id).order_by(Workspace.created_at)
                )
            ).all()
        return [self._opened_workspace(w) for w in workspaces]

    async def get_workspace(self, workspace_id: str, user_id: str | None = None) -> Workspace | None:
        """The workspace, or None when it does not exist or (with ``user_id``) is someone else's."""
        async with self.sessions() as s:
            workspace = await s.get(Workspace, workspace_id)
        if workspace is None or (user_id is not None and workspace.user_id != user_id):
            return None
        return self._opened_workspace(workspace)

    async def update_workspace(self, workspace_id: str, **fields: Any) -> None:
        if "agent_token" in fields:
            fields["agent_token"] = self.box.seal(fields["agent_token"])
        async with self.sessions.begin() as s:
            await s.execute(update(Workspace).where(Workspace.id == workspace_id).values(**fields))

    async def delete_workspace(self, workspace_id: str, user_id: str) -> bool:
        async with self.sessions.begin() as s:
            result = await s.execute(
                delete(Workspace).where(Workspace.id == workspace_id, Workspace.user_id == user_id)
            )
            return _affected(result) > 0

    # ---- admin MCP servers -------------------------------------------------------------------------

    def _sealed_headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        # Names stay readable (the API lists which are set); values are sealed one by one.
        return {name: self.box.seal(value) for name, value in (headers or {}).items()}

    def _sealed_oauth(self, oauth: dict[str, Any] | None) -> dict[str, Any] | None:
        # A pre-registered client: its id and scopes readable, its secret sealed.
        if not oauth:
            return None
        secret = oauth.get("client_secret")
        return {**oauth, "client_secret": self.box.seal(secret) if secret else None}

    def _opened_server(self, server: McpServer) -> McpServer:
        server.headers = {name: self.box.open(value) for name, value in (server.headers or {}).items()}
        if server.oauth and server.oauth.get("client_secret"):
            server.oauth = {**server.oauth, "client_secret": self.box.open(server.oauth["client_secret"])}
        return server

    async def create_mcp_server(self, **fields: Any) -> McpServer:
        now = utcnow()
        fields["headers"] = self._sealed_headers(fields.get("headers"))
        fields["oauth"] = self._sealed_oauth(fields.get("oauth"))
        server = McpServer(id=new_id(), created_at=now, updated_at=now, **fields)
        async with self.sessions.begin() as s:
            s.add(server)
        return self._opened_server(server)

    async def list_mcp_servers(self) -> Sequence[McpServer]:
        async with self.sessions() as s:
            servers = (await s.scalars(select(McpServer).order_by(McpServer.slug))).all()
        return [self._opened_server(server) for server in servers]

    async def get_mcp_server(self, server_id: str) -> McpServer | None:
        async with self.sessions() as s:
            server = await s.get(McpServer, server_id)
        return self._opened_server(server) if server is not None else None

    async def update_mcp_server(self, server_id: str, **fields: Any) -> McpServer | None:
        if "headers" in fields:
            fields["headers"] = self._sealed_headers(fields["headers"])
        if "oauth" in fields:
            fields["oauth"] = self._sealed_oauth(fields["oauth"])
        async with self.sessions.begin() as s:
            server = await s.get(McpServer, server_id)
            if server is None:
                return None
            for key, value in fields.items():
                setattr(server, key, value)
            server.updated_at = utcnow()
        return self._opened_server(server)

    async def check_secrets(self) -> None:
        """Open one stored secret of each kind: a wrong or missing key is found at start, not by
        a request later. Raises :class:`SecretKeyError`."""
        async with self.sessions() as s:
            token = await s.scalar(
                select(Workspace.agent_token).where(Workspace.agent_token.is_not(None)).limit(1)
            )
            # Admin servers are few; PostgreSQL cannot compare json, so the empty ones are skipped here.
            headers = [h for h in (await s.scalars(select(McpServer.headers))).all() if h][:1]
        try:
            if token is not None:
                self.box.open(token)
            for value in (v for h in headers for v in h.values()):
                self.box.open(value)
        except SecretKeyError as exc:
            raise SecretKeyError(f"the database's stored secrets cannot be opened: {exc}") from None

    async def delete_mcp_server(self, server_id: str) -> bool:
        async with self.sessions.begin() as s:
            return _affected(await s.execute(delete(McpServer).where(McpServer.id == server_id))) > 0

    # ---- chats -------------------------------------------------------------------------------------

    async def create_chat(
        self,
        user_id: str,
        workspace_id: str,
        *,
        title: str | None,
        model: str | None,
        use_admin_servers: bool = True,
        approval_policy: str = "auto",
    ) -> Chat:
        now = utcnow()
        chat = Chat(
            id=new_id(),
            user_id=user_id,
            workspace_id=workspace_id,
            title=title or "New chat",
            model=model,
            status="idle",
            use_admin_servers=use_admin_servers,
            approval_policy=approval_policy,
            always_allow=[],
            created_at=now,
            updated_at=now,
        )
        async with self.sessions.begin() as s:
            s.add(chat)
        return chat

    async def chat_page(
        self, user_id: str, limit: int, after: tuple[datetime, str] | None = None
    ) -> tuple[Sequence[Chat], bool]:
        """Up to ``limit`` of the user's chats, most recently updated first, starting after the
        chat ``after`` names by its (updated_at, id); and whether more follow. A keyset page: the
        index on (user_id, updated_at, id) answers it without counting what came before."""
        query = select(Chat).where(Chat.user_id == user_id)
        if after is not None:
            updated_at, chat_id = after
            # A row value: both databases seek the index to it (an OR of the two cases scans).
            query = query.where(tuple_(Chat.updated_at, Chat.id) < tuple_(updated_at, chat_id))
        query = query.order_by(Chat.updated_at.desc(), Chat.id.desc()).limit(limit + 1)
        async with self.sessions() as s:
            rows = (await s.scalars(query)).all()
        return rows[:limit], len(rows) > limit

    async def workspace_chat_ids(self, workspace_id: str) -> Sequence[str]:
        async with self.sessions() as s:
            return (await s.scalars(select(Chat.id).where(Chat.workspace_id == workspace_id))).all()

    async def get_chat(self, chat_id: str, user_id: str | None = None) -> Chat | None:
        async with self.sessions() as s:
            chat = await s.get(Chat, chat_id)
        if chat is None or (user_id is not None and chat.user_id != user_id):
            return None
        return chat

    async def update_chat(self, chat_id: str, **fields: Any) -> None:
        async with self.sessions.begin() as s:
            await s.execute(update(Chat).where(Chat.id == chat_id).values(updated_at=utcnow(), **fields))

    async def delete_chat(self, chat_id: str, user_id: str) -> bool:
        async with self.sessions.begin() as s:
            result = await s.execute(delete(Chat).where(Chat.id == chat_id, Chat.user_id == user_id))
            return _affected(result) > 0

    # ---- messages and the queue --------------------------------------------------------------------

    async def list_messages(
        self, chat_id: str, *, include_superseded: bool = True, after: int = 0
    ) -> Sequence[Message]:
        """The chat's history in order (from the message after id ``after``); without the messages
        retries replaced when the model is to read it."""
        query = select(Message).where(Message.chat_id == chat_id)
        if after:
            query = query.where(Message.id > after)
        if not include_superseded:
            query = query.where(Message.superseded.is_(False))
        async with self.sessions() as s:
            return (await s.scalars(query.order_by(Message.id))).all()

    async def add_messages(
        self,
        chat_id: str,
        messages: Sequence[NewMessage],
        *,
        status: str | None = None,
        owner: str | None = None,
    ) -> list[Message]:
        """Store one step (assistant message + tool results) atomically; the turn's last step sets the
        chat's new ``status`` in the same transaction. A stored step ends the pending one (its calls
        are no longer in flight). With ``owner``: only while that replica holds the chat."""
        now = utcnow()
        values = [
            {
                "chat_id": chat_id,
                "role": m.role,
                "parts": m.parts,
                "model": m.model,
                "usage": m.usage,
                "superseded": False,
                "created_at": now,
            }
            for m in messages
        ]
        fields: dict[str, Any] = {"updated_at": now, "pending_step": None}
        if status is not None:
            fields["status"] = status
        ids = await self.write(lambda c: _write_step(c, chat_id, values, fields, owner))
        return [Message(id=message_id, **value) for message_id, value in zip(ids, values, strict=True)]

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` (Core statements on a sync connection) in one transaction.

        The turn's hot path writes this way: on SQLite through the plain engine in one worker-thread
        hop (see db.py), elsewhere on the async engine's connection.
        """
        if self._step_writer is not None:
            return await anyio.to_thread.run_sync(self._write_sync, work)
        async with self.engine.begin() as connection:
            return await connection.run_sync(work)

    def _write_sync(self, work: Callable[[Connection], T]) -> T:
        assert self._step_writer is not None
        with self._step_writer.begin() as connection:
            return work(connection)

    @property
    def postgres(self) -> bool:
        return self.engine.url.drivername.startswith("postgresql")

    def close(self) -> None:
        if self._step_writer is not None:
            self._step_writer.dispose()

    async def enqueue(
        self,
        chat_id: str,
        content: str,
        *,
        title: str | None = None,
        parts: list[dict[str, Any]] | None = None,
    ) -> QueuedMessage:
        """Queue a user message (and, for a chat's first message, set its title in the same write);
        ``parts`` when it is more than ``content`` as text."""
        queued = QueuedMessage(chat_id=chat_id, content=content, parts=parts, created_at=utcnow())
        async with self.sessions.begin() as s:
            s.add(queued)
            if title is not None:
                await s.execute(update(Chat).where(Chat.id == chat_id).values(title=title))
        return queued

    async def enqueue_rerun(self, chat_id: str, content: str | None = None) -> QueuedMessage:
        """Queue a re-run of the chat's last turn from its user message, or from ``content`` in its
        place (an edit); refused (``RerunRefused``) while a turn runs or messages wait, and when
        there is no turn yet."""
        async with self.sessions.begin() as s:
            chat = await s.get(Chat, chat_id)
            if chat is None:
                raise RerunRefused("no such chat", "it was deleted")
            if chat.status == "running":
                raise RerunRefused(
                    "a turn is running",
                    "a retry re-runs the last turn once it has ended: wait for it, or stop it first",
                )
            waiting = await s.scalar(
                select(QueuedMessage.id).where(QueuedMessage.chat_id == chat_id).limit(1)
            )
            if waiting is not None:
                raise RerunRefused(
                    "messages are waiting to run",
                    "a retry re-runs the last turn; it cannot go behind queued messages",
                )
            last = await _last_user_message(s, chat_id)
            if last is None:
                raise RerunRefused("nothing to retry", "the chat has no message yet")
            queued = QueuedMessage(
                chat_id=chat_id,
                content=_text_of(last) if content is None else content,
                rerun_of=last.id,
                created_at=utcnow(),
            )
            s.add(queued)
        return queued

    async def list_queued(self, chat_id: str) -> Sequence[QueuedMessage]:
        async with self.sessions() as s:
            return (
                await s.scalars(
                    select(QueuedMessage).where(QueuedMessage.chat_id == chat_id).order_by(QueuedMessage.id)
                )
            ).all()

    async def delete_queued(self, chat_id: str, queued_id: int) -> bool:
        async with self.sessions.begin() as s:
            result = await s.execute(
                delete(QueuedMessage).where(QueuedMessage.chat_id == chat_id, QueuedMessage.id == queued_id)
            )
            return _affected(result) > 0

    async def start_next_turn(
        self, chat_id: str, *, owner: str | None = None, turn_seq: int | None = None
    ) -> TurnStart | None:
        """Take the oldest queued entry and mark the chat running, atomically.

        A message becomes the turn's user message in the history. A re-run takes the existing user
        message and supersedes every message after it; a re-run whose message is no longer the
        last turn's (a message got in first) is dropped.

        With ``owner``, only while that replica holds the chat (else ``LeaseLost``, and the entry
        stays queued). ``turn_seq`` is the first event number of the new turn: the events of the
        turn before the previous one are no longer kept.
        """
        # Core statements in one transaction (one worker-thread hop on SQLite): every turn starts here.
        return await self.write(lambda c: _start_next_turn(c, chat_id, owner, turn_seq))

    async def has_queue(self, chat_id: str) -> bool:
        async with self.sessions() as s:
            found = await s.scalar(select(QueuedMessage.id).where(QueuedMessage.chat_id == chat_id).limit(1))
        return found is not None

    async def resume_turn(self, chat_id: str) -> TurnStart | None:
        """The turn a stopped server left waiting for an approval, to be taken up again (None if
        none): its steps so far are stored, its pending calls wait again."""
        async with self.sessions() as s:
            waiting = await s.scalar(select(StepCall.chat_id).where(StepCall.chat_id == chat_id).limit(1))
            last = await _last_user_message(s, chat_id) if waiting is not None else None
        return TurnStart(last, [], resume=True) if last is not None else None

    # ---- settings ----------------------------------------------------------------------------------

    async def get_setting(self, key: str, default: Any = None) -> Any:
        async with self.sessions() as s:
            row = await s.get(Setting, key)
        return default if row is None else row.value

    async def set_setting(self, key: str, value: Any) -> None:
        async with self.sessions.begin() as s:
            row = await s.get(Setting, key)
            if row is None:
                s.add(Setting(key=key, value=value))
            else:
                row.value = value
