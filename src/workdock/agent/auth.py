"""Bearer-token check for the agent's API, as one ASGI middleware in front of every route.

A middleware rather than a FastAPI dependency: it guards every path (the OpenAPI document
included) in one place, and it costs microseconds on the hot catalog and call paths,
where dependency resolution cost a large part of a request.

Wrong tokens are counted per client address: after too many, that address gets 429 for a while
(``workdock.ratelimit``), so a token cannot be guessed at thousands of tries a second.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from workdock.ratelimit import FailedAttempts, blocked_error, client_address

# Reachable without the token: the liveness probe only.
OPEN_PATHS = frozenset({"/healthz"})
# Set in the scope of a request that came through the agent link (link/asgi.py): the server
# checked the link's token when the agent dialled it, and no HTTP client can set a scope key.
LINKED = "workdock.linked"
_UNAUTHORIZED = orjson.dumps(
    {"message": "unauthorized", "detail": "send Authorization: Bearer <agent token>"}
)


def bearer_credentials(value: bytes) -> bytes | None:
    """The credentials of an ``Authorization`` value when its scheme is Bearer (in any case)."""
    scheme, _, credentials = value.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return credentials.strip()


class BearerAuth:
    def __init__(self, app: ASGIApp, token: str, attempts: FailedAttempts | None = None) -> None:
        self.app = app
        self._token = token.encode()
        self._attempts = attempts or FailedAttempts()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope.get(LINKED):
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        wait = self._attempts.retry_after(address)
        if wait is not None:
            message, detail = blocked_error(wait)
            body = orjson.dumps({"message": message, "detail": detail})
            await _answer(send, 429, body, [(b"retry-after", str(wait).encode())])
            return
        verdict = self._verdict(scope["headers"])
        if verdict:
            await self.app(scope, receive, send)
            return
        if verdict is False:  # a token was sent and it was wrong (no token at all is no guess)
            self._attempts.record_failure(address)
        await _answer(send, 401, _UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])

    def admits(self, authorization: bytes | None, address: str) -> bool:
        """Whether a request with this ``Authorization`` value (its first) from ``address`` passes
        this check untouched: the right token, from an address that is not blocked (a request
        that would be answered 401 or 429, or counted as a failure, is not admitted: this
        changes no count)."""
        return self._attempts.retry_after(address) is None and self._matches(authorization) is True

    def _verdict(self, headers: list[tuple[bytes, bytes]]) -> bool | None:
        """True for the right token, False for a wrong one, None when none was sent."""
        for name, value in headers:
            if name == b"authorization":
                return self._matches(value)
        return None

    def _matches(self, authorization: bytes | None) -> bool | None:
        if authorization is None:
            return None
        credentials = bearer_credentials(authorization)
        # Constant time; a wrong scheme is compared too, so its answer takes as long.
        return hmac.compare_digest(credentials or b"", self._token) and credentials is not None


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                *headers,
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
