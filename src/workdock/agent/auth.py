"""Bearer-token check for the agent's API, as one ASGI middleware in front of every route.

A middleware rather than a FastAPI dependency: it guards every path (the OpenAPI document
included) in one place, and it costs microseconds on the hot catalog and call paths,
where dependency resolution cost a large part of a request.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

# Reachable without the token: the liveness probe only.
OPEN_PATHS = frozenset({"/healthz"})
# Set in the scope of a request that came through the agent link (link/asgi.py): the server
# checked the link's token when the agent dialled it, and no HTTP client can set a scope key.
LINKED = "workdock.linked"
_UNAUTHORIZED = orjson.dumps(
    {"message": "unauthorized", "detail": "send Authorization: Bearer <agent token>"}
)


class BearerAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or scope.get(LINKED)
            or self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)  # constant time
        return False
