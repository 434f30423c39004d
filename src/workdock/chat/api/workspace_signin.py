"""Signing in to a workspace's OAuth server from the web UI.

``POST /api/v0/workspaces/{id}/servers/{name}/sign-in`` has the workspace's agent start the
server's waiting sign-in again with this server's callback as its redirect URI
(``auth/start``; the agent keeps the PKCE verifier and state) and records whose it is under the
URL's ``state``. The authorization server sends the browser to ``GET /oauth/callback``, which
takes that record (once, for the same user's session only) and hands the code and state to the
agent (``auth/callback``), then sends the browser back to the workspaces page, where the
server's row shows it connecting and then ready, or its error.

The same callback finishes the sign-ins to per-user admin servers (:mod:`.mcp_signin`): the
pending record's kind says which.
"""

from __future__ import annotations

import asyncio
from html import escape
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from workdock.agentapi import SIGN_IN_RESTART_BUDGET, AgentError, AuthCallback
from workdock.chat.api import mcp_signin, schemas
from workdock.chat.api.workspace_trust import passed_on
from workdock.chat.api.workspaces import owned_workspace
from workdock.chat.auth import current_user, optional_user, services
from workdock.chat.services import Services
from workdock.chat.signins import PendingSignIn
from workdock.chat.store.models import User
from workdock.http_errors import ApiError
from workdock.http_json import api_router
from workdock.web import SECURITY_HEADERS

router = api_router(prefix="/api/v0", tags=["workspaces"])
callback_router = api_router(tags=["workspaces"])

CALLBACK_PATH = "/oauth/callback"
AGENT_BUDGET_S = 15.0
WORKSPACES_PAGE = "/#/workspaces"
CHATS_PAGE = "/"


def callback_url(svc: Services) -> str:
    return callback_url_of(svc.config.public_url)


def callback_url_of(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


@router.post(
    "/workspaces/{workspace_id}/servers/{name}/sign-in",
    response_model=schemas.SignInStarted,
    responses=schemas.writes(404, 409),
)
async def start_sign_in(
    workspace_id: str,
    name: str = Path(min_length=1, max_length=200),
    user: User = Depends(current_user),
    svc: Services = Depends(services),
) -> dict[str, str]:
    """Start the sign-in of a ``needs_auth`` server: the authorization URL for the browser to open.
    Its answer comes back to ``/oauth/callback`` on this server within ten minutes."""
    workspace = await owned_workspace(svc, workspace_id, user)
    try:
        client = svc.pool.client(workspace)
        url = await asyncio.wait_for(client.auth_start(name, callback_url(svc)), SIGN_IN_RESTART_BUDGET)
    except AgentError as exc:
        raise passed_on(exc) from None
    except TimeoutError:
        raise ApiError(409, "the workspace's agent did not answer in time") from None
    state = (parse_qs(urlsplit(url).query).get("state") or [""])[0]
    if not state:
        raise ApiError(409, "the workspace's agent made an authorization URL without a state")
    await svc.signins.add(state, PendingSignIn(user.id, "workspace", name, workspace_id=workspace.id))
    return {"authorization_url": url}


def _page(title: str, text: str, status: int, back: str = WORKSPACES_PAGE) -> HTMLResponse:
    """A page for the person whose browser came back: what happened, and the way back. It has the
    app's stylesheet and headers (no inline style or script)."""
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)} · workdock</title><link rel=stylesheet href='/assets/styles.css'>"
        f"<main class='page-body'><div class='card'><h1>{escape(title)}</h1><p>{escape(text)}</p>"
        f"<p><a href='{back}'>Back to {'the workspaces' if back == WORKSPACES_PAGE else 'workdock'}</a></p>"
        "</div></main></html>",
        status_code=status,
        headers=SECURITY_HEADERS,
    )


@callback_router.get(CALLBACK_PATH, include_in_schema=False)
async def sign_in_callback(
    state: str | None = Query(default=None, max_length=1024),
    code: str | None = Query(default=None, max_length=4096),
    iss: str | None = Query(default=None, max_length=2048),
    error: str | None = Query(default=None, max_length=200),
    error_description: str | None = Query(default=None, max_length=1000),
    user: User | None = Depends(optional_user),
    svc: Services = Depends(services),
) -> Response:
    """Where the authorization server sends the browser: the code goes to the workspace's agent."""
    if user is None:
        return _page(
            "Log in first", "This sign-in needs the session that started it: log in and start it again.", 401
        )
    pending = await svc.signins.take(state, user.id) if state else None
    if pending is None:
        return _page(
            "Not a sign-in in progress",
            "This link is used already, has expired, or was not started by you here. "
            "Click Sign in on the server's row again.",
            400,
        )
    if error:
        reason = f"{error}: {error_description}" if error_description else error
        return _page("Sign-in refused", f"The authorization server of {pending.server} said {reason}.", 400)
    if not code:
        return _page("Not a sign-in", "The authorization server sent no code.", 400)
    if pending.kind == "admin":
        failure = await mcp_signin.finish(svc, pending, code, state or "", iss)
        if failure is not None:
            return _page("Sign-in failed", f"{failure.message}.", failure.status, CHATS_PAGE)
        return RedirectResponse(CHATS_PAGE, status_code=303)
    assert pending.workspace_id is not None
    workspace = await svc.store.get_workspace(pending.workspace_id, user.id)
    if workspace is None:
        return _page("No such workspace", "The workspace was removed meanwhile.", 404)
    try:
        client = svc.pool.client(workspace)
        callback = AuthCallback(code=code, state=state or "", iss=iss)
        await asyncio.wait_for(client.auth_callback(pending.server, callback), AGENT_BUDGET_S)
    except AgentError as exc:
        refused = passed_on(exc)
        return _page("Sign-in failed", f"{refused.message}. Click Sign in again.", refused.status)
    except TimeoutError:
        return _page("Sign-in failed", "The workspace's agent did not answer in time.", 409)
    svc.pool.drop_catalog(workspace.id)  # its tools come with the next turn
    return RedirectResponse(WORKSPACES_PAGE, status_code=303)
