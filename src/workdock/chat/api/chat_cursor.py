"""The opaque ``cursor`` of ``GET /chats``: where the page before ended, as (updated_at, id)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from workdock.http_errors import ApiError


def encode(updated_at: datetime, chat_id: str) -> str:
    return base64.urlsafe_b64encode(f"{updated_at.isoformat()}|{chat_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, chat_id = raw.split("|", 1)
        updated_at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad cursor", "pass the next_cursor of a GET /chats answer as it is") from None
    if updated_at.tzinfo is None or not chat_id:
        raise ApiError(400, "bad cursor", "pass the next_cursor of a GET /chats answer as it is")
    return updated_at, chat_id
