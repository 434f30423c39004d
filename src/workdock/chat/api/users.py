"""Login, the current user, and (admin) users and their API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from workdock.chat import notify
from workdock.chat.api import schemas
from workdock.chat.auth import (
    COOKIE,
    SESSION_TTL,
    admin_user,
    current_user,
    login_url,
    record_failure,
    refuse_if_blocked,
    services,
)
from workdock.chat.services import Services
from workdock.chat.store.models import Token, User
from workdock.http_errors import ApiError
from workdock.http_json import api_router
from workdock.web import index_response

router = api_router(prefix="/api/v0", tags=["users"])
login_router = api_router(tags=["users"])


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "is_admin": user.is_admin,
        "created_at": user.created_at.isoformat(),
    }


def token_json(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }


class LoginBody(BaseModel):
    code: str


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    is_admin: bool = False


class NewToken(BaseModel):
    name: str = Field(default="api", min_length=1, max_length=100)


async def _start_session(svc: Services, code: str, request: Request, response: Response) -> User:
    refuse_if_blocked(svc, request)
    user = await svc.store.redeem_login_code(code)
    if user is None:
        record_failure(svc, request)
        raise ApiError(401, "invalid login code", "the code is unknown, used or expired; ask for a new one")
    await _open_session(svc, user, request, response)
    return user


async def _open_session(svc: Services, user: User, request: Request, response: Response) -> None:
    _, session = await svc.store.create_token(user.id, "web session", kind="session", ttl=SESSION_TTL)
    response.set_cookie(
        COOKIE,
        session,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        # Served over TLS: said by the public URL, or by a trusted proxy's X-Forwarded-Proto (uvicorn
        # sets the scheme from it for trusted peers only).
        secure=svc.config.https or request.url.scheme == "https",
    )


@login_router.get("/login", include_in_schema=False)
async def login_page(request: Request, code: str = Query(), svc: Services = Depends(services)) -> Response:
    """The one-time login URL: sets the session cookie and goes to the app. A used or expired one
    is a 401 with the app's page, which tells a person how to get a new one."""
    response = RedirectResponse("/", status_code=303)
    try:
        await _start_session(svc, code, request, response)
    except ApiError as exc:
        if exc.status != 401:
            raise
        return index_response(401)
    return response


@router.post("/login", response_model=schemas.LoginAnswer, responses=schemas.writes())
async def login(
    body: LoginBody, request: Request, response: Response, svc: Services = Depends(services)
) -> dict[str, Any]:
    return {"user": user_json(await _start_session(svc, body.code, request, response))}


@router.post("/session", response_model=schemas.LoginAnswer, responses=schemas.writes())
async def token_session(
    request: Request,
    response: Response,
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Trade a bearer token for a browser session: the web UI's "paste a token" login.

    The session is a token of its own, so logging out never revokes the pasted API token.
    """
    await _open_session(svc, user, request, response)
    return {"user": user_json(user)}


@router.post("/logout", status_code=204, responses=schemas.writes())
async def logout(
    request: Request, response: Response, _: User = Depends(current_user), svc: Services = Depends(services)
) -> None:
    if request.cookies.get(COOKIE) == request.state.token:  # never revoke an API token by logging out
        await svc.store.delete_token_by_value(request.state.token)
        await svc.notifier.notify(notify.AUTH)  # no replica may still take it from its cache
    response.delete_cookie(COOKIE)


@router.get("/me", response_model=schemas.UserOut, responses=schemas.reads())
async def me(user: User = Depends(current_user)) -> dict[str, Any]:
    return user_json(user)


@router.get("/users", response_model=schemas.UserList, responses=schemas.reads(403))
async def list_users(_: User = Depends(admin_user), svc: Services = Depends(services)) -> dict[str, Any]:
    return {"users": [user_json(u) for u in await svc.store.list_users()]}


@router.post(
    "/users",
    status_code=201,
    response_model=schemas.UserCreated,
    responses={
        **schemas.created(
            "user_id",
            ("post", "/api/v0/users/{user_id}/login-url"),
            ("get", "/api/v0/users/{user_id}/tokens"),
            ("post", "/api/v0/users/{user_id}/tokens"),
            ("delete", "/api/v0/users/{user_id}"),
        ),
        **schemas.writes(403, 409),
    },
)
async def create_user(
    body: NewUser, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    if await svc.store.get_user_by_name(body.name):
        raise ApiError(409, "user exists", f"a user named {body.name!r} already exists")
    user = await svc.store.create_user(body.name, is_admin=body.is_admin)
    return {**user_json(user), "login_url": await login_url(svc, user)}


@router.delete("/users/{user_id}", status_code=204, responses=schemas.writes(403, 404))
async def delete_user(
    user_id: str, admin: User = Depends(admin_user), svc: Services = Depends(services)
) -> None:
    if user_id == admin.id:
        raise ApiError(400, "cannot delete yourself")
    if not await svc.store.delete_user(user_id):
        raise ApiError(404, "no such user")
    await svc.notifier.notify(notify.AUTH)


@router.post(
    "/users/{user_id}/login-url", response_model=schemas.LoginUrl, responses=schemas.writes(403, 404)
)
async def new_login_url(
    user_id: str, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, str]:
    user = await svc.store.get_user(user_id)
    if user is None:
        raise ApiError(404, "no such user")
    return {"login_url": await login_url(svc, user)}


@router.get("/users/{user_id}/tokens", response_model=schemas.TokenList, responses=schemas.reads(403))
async def list_tokens(
    user_id: str, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    return {"tokens": [token_json(t) for t in await svc.store.list_tokens(user_id)]}


@router.post(
    "/users/{user_id}/tokens",
    status_code=201,
    response_model=schemas.TokenCreated,
    responses=schemas.writes(403, 404),
)
async def create_token(
    user_id: str, body: NewToken, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> dict[str, Any]:
    if await svc.store.get_user(user_id) is None:
        raise ApiError(404, "no such user")
    token, plain = await svc.store.create_token(user_id, body.name)
    return {**token_json(token), "token": plain}  # the only time the token is shown


@router.delete("/tokens/{token_id}", status_code=204, responses=schemas.writes(403, 404))
async def delete_token(
    token_id: str, _: User = Depends(admin_user), svc: Services = Depends(services)
) -> None:
    if not await svc.store.delete_token(token_id):
        raise ApiError(404, "no such token")
    await svc.notifier.notify(notify.AUTH)
