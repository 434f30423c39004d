"""The link endpoint: a workspace agent dials ``/api/v0/agents/link`` as a WebSocket with its
token, and is reached through that connection until it ends (docs/agent-link.md)."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from workdock.chat.services import Services
from workdock.http_errors import error_response
from workdock.link.dialer import LINK_PATH, VERSION_HEADER
from workdock.link.frames import PROTOCOL, ProtocolError
from workdock.link.session import LinkClosed
from workdock.ratelimit import blocked_error, client_address

router = APIRouter(tags=["agents"])


class _Socket:
    """A Starlette WebSocket as the link session's Socket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    async def send(self, data: bytes) -> None:
        try:
            await self._websocket.send({"type": "websocket.send", "bytes": data})
        except Exception as exc:  # the server's own errors for a connection that went away
            raise LinkClosed(1006, "the connection was lost") from exc

    async def recv(self) -> bytes:
        message = await self._websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise LinkClosed(message.get("code") or 1005, message.get("reason") or "")
        data = message.get("bytes")
        if data is None:
            raise ProtocolError("a text message on the link")
        return bytes(data)

    async def close(self, code: int, reason: str) -> None:
        # Nothing to close once the peer (or the server shutting down) closed the connection.
        if (
            self._websocket.application_state is WebSocketState.CONNECTED
            and self._websocket.client_state is WebSocketState.CONNECTED
        ):
            with contextlib.suppress(Exception):
                await self._websocket.close(code, reason)


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@router.websocket(LINK_PATH)
async def agent_link(websocket: WebSocket) -> None:
    svc: Services = websocket.app.state.services
    address = client_address(websocket.scope)
    # Token guessing through the link is counted with every other wrong credential of that address.
    wait = svc.attempts.retry_after(address)
    if wait is not None:
        await websocket.send_denial_response(
            error_response(429, *blocked_error(wait), headers={"Retry-After": str(wait)})
        )
        return
    token = _bearer(websocket)
    workspace = await svc.store.workspace_for_agent_token(token) if token else None
    if workspace is None:
        if token:
            svc.attempts.record_failure(address)
        await websocket.send_denial_response(
            error_response(
                401,
                "unauthorized",
                "send Authorization: Bearer <agent token> (the token of a linked workspace)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        )
        return
    if PROTOCOL not in websocket.scope.get("subprotocols", []):
        await websocket.send_denial_response(
            error_response(
                400, "unsupported link protocol", f"this server speaks {PROTOCOL}: upgrade the agent"
            )
        )
        return
    await websocket.accept(subprotocol=PROTOCOL)
    client = websocket.client
    peer = f"{client.host}:{client.port}" if client else None
    version = websocket.headers.get(VERSION_HEADER)
    await svc.pool.links.serve(
        workspace.id,
        _Socket(websocket),
        peer=peer,
        agent_version=version[:64] if version else None,
        token_hash=workspace.agent_token_hash,
    )
