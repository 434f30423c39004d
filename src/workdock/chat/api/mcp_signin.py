"""Each user's own sign-in to a per-user admin server (``auth: "oauth"``).

``POST /api/v0/mcp-servers/{id}/signin`` (any logged-in user) opens the caller's connection to the
server, whose 401 starts the SDK's flow with the chat server's ``/oauth/callback`` as redirect URI
(PKCE S256, ``resource``, a dynamically registered or the pre-registered client); its URL is
answered and its ``state`` recorded as a pending sign-in of kind "admin", naming this replica.
The callback (:mod:`workdock.chat.api.workspace_signin`) hands the code to that replica's waiting
flow: here, or sent on with the service secret to ``/internal/v0/signins`` on the replica that
started it, since the PKCE verifier never leaves the process that made it.
``DELETE …/signin`` closes the caller's connection, revokes their tokens at the server where it
offers revocation, and forgets them.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx2
import orjson
from fastapi import Depends
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from workdock.chat import notify
from workdock.chat.api import schemas
from workdock.chat.auth import current_user, services
from workdock.chat.services import Services
from workdock.chat.signins import PendingSignIn
from workdock.chat.store.models import McpServer, User
from workdock.chat.tools.user_servers import UserServers
from workdock.http_errors import ApiError, error_response
from workdock.http_json import api_router
from workdock.link.relay import SECRET_HEADER
from workdock.mcp.oauth import SignInError

router = api_router(prefix="/api/v0", tags=["mcp-servers"])

FORWARD_PATH = "/internal/v0/signins"
FORWARD_TIMEOUT_S = 30.0
FINISH_BUDGET_S = 15.0  # how long the callback waits for the code's exchange before answering


class ForwardedCode(BaseModel):
    user_id: str = Field(max_length=32)
    server: str = Field(max_length=200)
    code: str = Field(max_length=4096)
    state: str = Field(max_length=1024)
    iss: str | None = Field(default=None, max_length=2048)


def _users(svc: Services) -> UserServers:
    if svc.admin.users is None:
        raise ApiError(409, "this chat server has no per-user MCP servers")
    return svc.admin.users


async def _per_user_server(svc: Services, server_id: str) -> McpServer:
    server = await svc.store.get_mcp_server(server_id)
    if server is None:
        raise ApiError(404, "no such MCP server")
    if server.auth != "oauth":
        raise ApiError(409, "this server takes no sign-in", "it is shared, with the headers an admin set")
    if not server.enabled:
        raise ApiError(409, "this server is disabled")
    return server


@router.post(
    "/mcp-servers/{server_id}/signin",
    response_model=schemas.SignInStarted,
    responses=schemas.writes(404, 409),
)
async def start_sign_in(
    server_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> dict[str, str]:
    """Start the caller's own sign-in to a per-user server: the authorization URL to open. Its
    answer comes back to ``/oauth/callback`` within ten minutes."""
    server = await _per_user_server(svc, server_id)
    try:
        url = await _users(svc).start_sign_in(user.id, server)
    except SignInError as exc:
        raise ApiError(exc.status, exc.message) from None
    state = (parse_qs(urlsplit(url).query).get("state") or [""])[0]
    if not state:
        raise ApiError(502, "the server's authorization URL has no state")
    pending = PendingSignIn(
        user.id, "admin", server.slug, mcp_server_id=server.id, replica_id=svc.replicas.id
    )
    await svc.signins.add(state, pending)
    return {"authorization_url": url}


@router.delete("/mcp-servers/{server_id}/signin", status_code=204, responses=schemas.writes(404, 409))
async def sign_out(
    server_id: str, user: User = Depends(current_user), svc: Services = Depends(services)
) -> None:
    """Sign the caller out: their connection closes, their tokens are revoked and forgotten."""
    server = await svc.store.get_mcp_server(server_id)
    if server is None:
        raise ApiError(404, "no such MCP server")
    if server.auth != "oauth":
        raise ApiError(409, "this server takes no sign-in", "it is shared, with the headers an admin set")
    await _users(svc).sign_out(user.id, server)
    await svc.notifier.notify(notify.ADMIN)  # the other replicas close this user's connection too


async def finish(
    svc: Services, pending: PendingSignIn, code: str, state: str, iss: str | None
) -> SignInError | None:
    """Hand the callback's code to the flow waiting for it (here or on its replica); why not, if not."""
    if pending.replica_id is not None and pending.replica_id != svc.replicas.id:
        return await _forward(svc, pending, code, state, iss)
    return await _finish_here(svc, pending.user_id, pending.server, code, state, iss)


async def _finish_here(
    svc: Services, user_id: str, slug: str, code: str, state: str, iss: str | None
) -> SignInError | None:
    users = svc.admin.users
    if users is None:
        return SignInError(409, "this chat server has no per-user MCP servers")
    try:
        await users.finish_sign_in(user_id, slug, code, state, iss)
    except SignInError as exc:
        return exc
    status = await users.wait_signed_in(user_id, slug, FINISH_BUDGET_S)
    if status is not None and status.state == "failed":
        return SignInError(502, f"signing in to {slug} did not work: {status.error}")
    return None


async def _forward(
    svc: Services, pending: PendingSignIn, code: str, state: str, iss: str | None
) -> SignInError | None:
    peer = svc.replicas.peer(pending.replica_id or "")
    if peer is None or not peer.alive:
        return SignInError(409, "the chat server that started this sign-in is gone: click Sign in again")
    body = ForwardedCode(user_id=pending.user_id, server=pending.server, code=code, state=state, iss=iss)
    try:
        async with httpx2.AsyncClient(timeout=FORWARD_TIMEOUT_S, trust_env=False) as http:
            response = await http.post(
                f"http://{peer.address}{FORWARD_PATH}",
                content=body.model_dump_json(),
                headers={SECRET_HEADER: svc.replicas.secret, "content-type": "application/json"},
            )
    except httpx2.HTTPError as exc:
        return SignInError(
            502, f"the chat server that started this sign-in cannot be reached ({type(exc).__name__})"
        )
    if response.status_code == 204:
        return None
    try:
        message = str(orjson.loads(response.content).get("message"))
    except (orjson.JSONDecodeError, AttributeError):
        message = f"answered {response.status_code}"
    status = response.status_code if 400 <= response.status_code < 500 else 502
    return SignInError(status, message)


async def finish_forwarded(svc: Services, request: Request) -> Response:
    """The starting replica's side of a callback that reached another one (the service secret
    is checked by the caller)."""
    try:
        body = ForwardedCode.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(400, "not a sign-in's code", str(exc)[:500])
    refused = await _finish_here(svc, body.user_id, body.server, body.code, body.state, body.iss)
    if refused is not None:
        return error_response(refused.status, refused.message)
    return Response(status_code=204)
