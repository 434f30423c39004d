"""The chat server's tables (one schema for SQLite and PostgreSQL; changed only by migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always read back timezone-aware, in UTC.

    PostgreSQL keeps a timestamptz; SQLite keeps text and hands back naive datetimes even for
    ``timezone=True`` columns. We only ever store UTC, so a naive value read back is UTC: said here
    once, every response shows one format (``...+00:00``) on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_Timestamp = UTCDateTime()


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class Token(Base):
    """An API token; only its SHA-256 is stored, the token itself is shown once."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # "api" tokens are made by an admin; "login" ones are one-time login codes; "session" ones
    # come from a login and live in the browser's cookie.
    kind: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(_Timestamp, nullable=True)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # "direct": the server dials agent_url with agent_token. "link": the agent dials the server with
    # a token of which only agent_token_hash is kept (agent_url and agent_token are then null).
    connection: Mapped[str] = mapped_column(String(8), default="direct", server_default="direct")
    agent_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Sealed (workdock.secretbox); never returned by the API.
    agent_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    agent_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    # Where the workspace is, as its agent's host sees it (set by ``workdock up``); shown as detail.
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)

    @property
    def linked(self) -> bool:
        return self.connection == "link"


class McpServer(Base):
    """An admin MCP server, offered to every chat that has not opted out."""

    __tablename__ = "mcp_servers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(8), default="http")
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # values sealed (workdock.secretbox)
    allow_tools: Mapped[list[str]] = mapped_column(JSON, default=list)
    deny_tools: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # "headers": one shared connection with the static headers; "oauth": each user signs in.
    auth: Mapped[str] = mapped_column(String(16), default="headers", server_default="headers")
    # {"client_id", "client_secret" (sealed), "scopes"}: a pre-registered client; None: registered
    # dynamically per user.
    oauth: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class McpSignIn(Base):
    """One user's sign-in to a per-user admin server (chat/user_tokens.py): the tokens and client
    registration, sealed as one record; ``signed_in`` says whether it holds tokens yet."""

    __tablename__ = "mcp_signins"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    server_id: Mapped[str] = mapped_column(
        ForeignKey("mcp_servers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    record: Mapped[str] = mapped_column(Text)  # sealed JSON (workdock.secretbox)
    signed_in: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class Chat(Base):
    __tablename__ = "chats"
    # A user's chats newest first, a page at a time (Store.chat_page).
    __table_args__ = (Index("ix_chats_user_updated", "user_id", "updated_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # idle | running | error | interrupted
    status: Mapped[str] = mapped_column(String(16), default="idle")
    use_admin_servers: Mapped[bool] = mapped_column(Boolean, default=True)
    # auto | ask | ask-all (chat/approvals.py); tools "always allowed" in this chat skip asking.
    approval_policy: Mapped[str] = mapped_column(String(16), default="auto", server_default="auto")
    always_allow: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # What the chat turned off: {"sources": [...], "servers": [{"source", "server"}], "tools": [...]}
    # (chat/catalog.py); null: nothing.
    disabled_tools: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The chat's own tool budget, {"max_tools"?, "max_tokens"?}; null: the server's.
    tool_budget: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)
    # The replica running the chat's turns holds it by this lease (chat/scheduler.py): renewed
    # while it runs, free once it lapses. A live turn always has a live lease.
    lease_owner: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(_Timestamp, nullable=True)
    # Event ids (chat/eventlog.py): the highest sequence number the owner may have used (a block is
    # reserved when a lease is taken, given back when it is released), and where the last turn began.
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    turn_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # A user asked to stop the turn that began at this sequence number.
    interrupt_turn: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The step whose tool calls are running: its assistant message and calls, written before the
    # calls start, so whoever takes the chat over knows which calls were in flight.
    pending_step: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Raised whenever messages already stored change (a retry or an edit supersedes them): a copy of
    # the history kept between turns (chat/history_cache.py) is good only while it is the same.
    history_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Setting(Base):
    """A server-wide setting the admin changes through the API (e.g. new chats' approval policy)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class StepCall(Base):
    """One tool call of a step that waits for an approval: stored, so the wait outlives a restart.

    The step's assistant message is stored when it starts waiting; these rows hold each call's
    state until the step's results are stored (then they are deleted in the same transaction).
    ``state``: ``pending`` (asks the user), ``approved`` / ``denied`` (answered, not run yet),
    ``running``, ``done`` (``result`` holds its stored tool-result part).
    """

    __tablename__ = "step_calls"

    chat_id: Mapped[str] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    tool_call_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[int] = mapped_column(Integer)  # the assistant message that made the call
    position: Mapped[int] = mapped_column(Integer)  # the call's place in its step
    tool_name: Mapped[str] = mapped_column(String(200))
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class Message(Base):
    """One persisted message; ``parts`` is our own part vocabulary (see chat/events.py)."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_chat_id_id", "chat_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # user | assistant | tool
    parts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    usage: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    # Replaced by a retry of its turn: kept for the record, no longer sent to the model.
    superseded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class QueuedMessage(Base):
    """A user message waiting for the running turn to end; it becomes a Message when its turn starts."""

    __tablename__ = "queued_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    content: Mapped[str] = mapped_column(Text)
    # Set for a retry: the user message whose turn runs again (its later messages are superseded
    # when the turn starts); ``content`` is then that message's text.
    rerun_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The message's parts when it is more than ``content`` as text (attached resources, a prompt's
    # messages); null for plain text.
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class ChatEvent(Base):
    """One stream event of a chat (its current and previous turn are kept): how watchers on any
    replica, and watchers that come back later, get what they missed."""

    __tablename__ = "chat_events"

    chat_id: Mapped[str] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    data: Mapped[str] = mapped_column(Text)  # the JSON payload, as sent
    # Older turns' events are pruned only once this old (a watcher that lags turns behind, or a
    # quick reconnect, still finds them).
    stored_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class Replica(Base):
    """A running chat server of the service, with its heartbeat (chat/replicas.py)."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    address: Mapped[str] = mapped_column(String(300))  # HOST:PORT where the other replicas reach it
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class AgentLink(Base):
    """Where a linked workspace's agent is connected: which replica holds its link (null while it is
    not connected), and what is known of the link for the status API."""

    __tablename__ = "agent_links"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    replica_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    connected_since: Mapped[datetime | None] = mapped_column(_Timestamp, nullable=True)
    disconnected_since: Mapped[datetime | None] = mapped_column(_Timestamp, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    agent_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    peer: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ServiceSecret(Base):
    """A secret of the whole service, made once by the first replica; sealed (workdock.secretbox)."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, default=utcnow)


class PendingSignIn(Base):
    """A sign-in begun from the web UI, waiting for its OAuth callback (chat/signins.py): whose it
    is, under a hash of the authorization URL's ``state``. ``kind`` "workspace": a workspace
    server's (its agent finishes it); "admin": a per-user admin server's, finished by the replica
    ``replica_id`` whose connection waits for the code."""

    __tablename__ = "pending_signins"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="workspace", server_default="workspace")
    workspace_id: Mapped[str | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=True
    )
    mcp_server_id: Mapped[str | None] = mapped_column(
        ForeignKey("mcp_servers.id", ondelete="CASCADE"), nullable=True
    )
    replica_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    server: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(_Timestamp, index=True)
