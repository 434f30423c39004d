"""Alembic environment: migrations run programmatically on the connection the server hands over."""

from __future__ import annotations

from alembic import context

from workdock.chat.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only the server runs these migrations
    raise RuntimeError("workdock migrations run from the server (workdock.chat.store.db.migrate)")

# render_as_batch lets ALTERs work on SQLite too, so one migration serves both databases.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
