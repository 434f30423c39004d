"""Bearer-token check for the agent's API (constant-time comparison)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workdock.http_errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="The agent token")


def require_token(token: str) -> Callable[..., object]:
    """A FastAPI dependency that admits only requests carrying ``Authorization: Bearer <token>``."""
    expected = token.encode()

    async def check(request: Request) -> None:
        credentials: HTTPAuthorizationCredentials | None = await _bearer(request)
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <agent token>",
                           headers={"WWW-Authenticate": "Bearer"})

    return check
