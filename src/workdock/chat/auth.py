"""Who is calling: a bearer token or the browser's session cookie, checked against stored hashes."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workdock.chat.services import Services
from workdock.chat.store.models import User
from workdock.chat.store.repo import Store
from workdock.http_errors import ApiError

COOKIE = "workdock_session"
SESSION_TTL = timedelta(days=30)
LOGIN_CODE_TTL = timedelta(hours=24)

_bearer = HTTPBearer(auto_error=False, description="An API token, or the session cookie after login")


def services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def current_user(request: Request, svc: Services = Depends(services)) -> User:
    credentials: HTTPAuthorizationCredentials | None = await _bearer(request)
    token = credentials.credentials if credentials else request.cookies.get(COOKIE)
    user = await svc.store.user_for_token(token) if token else None
    if user is None:
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <token> or log in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.token = token
    return user


async def admin_user(user: User = Depends(current_user)) -> User:
    if not user.is_admin:
        raise ApiError(403, "admin only", "this needs an admin user")
    return user


async def login_url(svc: Services, user: User) -> str:
    """A one-time URL that logs ``user`` in (valid for a day, used once)."""
    return await new_login_url(svc.store, svc.config.public_url, user)


async def new_login_url(store: Store, base_url: str, user: User) -> str:
    """The same, from a store alone (``workdock login-url`` runs without the server)."""
    _, code = await store.create_token(user.id, "login", kind="login", ttl=LOGIN_CODE_TTL)
    return f"{base_url.rstrip('/')}/login?code={code}"
