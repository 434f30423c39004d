"""Who is calling: a bearer token or the browser's session cookie, checked against stored hashes.

Wrong tokens, cookies and login codes are counted per client address; past the limit that
address gets 429 for a while (``workdock.ratelimit``), the right credentials included.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from workdock.chat.services import Services
from workdock.chat.store.models import User
from workdock.chat.store.repo import AGENT_TOKEN_PREFIX, Store
from workdock.http_errors import ApiError
from workdock.ratelimit import blocked_error, client_address

COOKIE = "workdock_session"
SESSION_TTL = timedelta(days=30)
LOGIN_CODE_TTL = timedelta(hours=24)

# HTTPBearer takes the scheme in any case ("bearer" too).
_bearer = HTTPBearer(auto_error=False, description="An API token")
# Either one (the OpenAPI document lists them as alternatives); the bearer token wins.
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="The web UI's session, set by a login")


def services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def refuse_if_blocked(svc: Services, request: Request) -> None:
    wait = svc.attempts.retry_after(client_address(request.scope))
    if wait is not None:
        raise ApiError(429, *blocked_error(wait), headers={"Retry-After": str(wait)})


def record_failure(svc: Services, request: Request) -> None:
    svc.attempts.record_failure(client_address(request.scope))


async def current_user(
    request: Request,
    svc: Services = Depends(services),
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    cookie: str | None = Depends(_cookie),
) -> User:
    refuse_if_blocked(svc, request)
    token = credentials.credentials if credentials else cookie
    if token and token.startswith(AGENT_TOKEN_PREFIX):
        raise ApiError(
            401,
            "unauthorized",
            "an agent token opens its workspace's link and nothing else: use an API token or log in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = await svc.store.user_for_token(token) if token else None
    if user is None:
        if token:  # a wrong credential is a guess; none at all (a fresh browser) is not
            record_failure(svc, request)
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <token> or log in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.token = token
    return user


async def optional_user(
    request: Request,
    svc: Services = Depends(services),
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    cookie: str | None = Depends(_cookie),
) -> User | None:
    """The caller as :func:`current_user` finds them, or None where that is a 401 (a page that
    tells a person to log in, rather than a JSON error)."""
    try:
        return await current_user(request, svc, credentials, cookie)
    except ApiError as exc:
        if exc.status != 401:
            raise
        return None


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
