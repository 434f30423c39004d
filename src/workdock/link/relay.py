"""The relay: a replica reaches an agent whose link another replica of the service holds, through
that replica. The third transport under ``AgentClient``, beside direct HTTP and the link.

The calling replica sends the agent request as it is (method, headers, body streamed) to the
holder's ``/internal/v0/relay/{workspace_id}``, with the service secret and the request's target in
two headers of ours; the holder sends it on over the link and streams the answer back. A caller that
gives up closes its connection to the holder, which cancels the stream on the link: the agent sees
the hang-up exactly as over HTTP. A holder that has no link for the workspace (any more) answers
with ``Workdock-Relay-Error`` and the reason, which the caller raises as the link transport would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import httpx2
import orjson
from starlette.types import Message, Receive, Scope, Send

from workdock.agentapi import AgentUnavailable
from workdock.link.session import Session
from workdock.link.transport import exchange

logger = logging.getLogger(__name__)

RELAY_PATH = "/internal/v0/relay"
SECRET_HEADER = "workdock-replica-secret"
TARGET_HEADER = "workdock-relay-target"
ERROR_HEADER = "workdock-relay-error"  # "unavailable" (no link here), "failed" (the link broke)
RELAY_BASE_URL = "http://linked-agent.invalid"

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "te", "trailer", "proxy-connection"}
)
_OURS = frozenset({SECRET_HEADER, TARGET_HEADER, ERROR_HEADER})


def _passed_on(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in headers if n.lower().decode("latin-1") not in _HOP_BY_HOP | _OURS]


class RelayError(Exception):
    """The holder answered that it cannot relay (it has no link for the workspace)."""


# ---- the calling replica ---------------------------------------------------------------------------


class RelayClient:
    """This replica's requests to link holders: one connection pool, the service secret."""

    def __init__(self, secret: Callable[[], str]) -> None:
        self._secret = secret
        # Each request carries the timeouts its caller gave; none of the pool's own.
        self._http = httpx2.AsyncClient(timeout=None, trust_env=False)

    async def send(self, address: str, workspace_id: str, request: httpx2.Request) -> httpx2.Response:
        headers = _passed_on(list(request.headers.raw))
        headers += [
            (SECRET_HEADER.encode(), self._secret().encode()),
            (TARGET_HEADER.encode(), request.url.raw_path),
        ]
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        content: bytes | AsyncIterator[bytes] = (
            await request.aread() if isinstance(request.stream, httpx2.ByteStream) else _pieces(request)
        )
        upstream = self._http.build_request(
            request.method,
            f"http://{address}{RELAY_PATH}/{workspace_id}",
            headers=headers,
            content=content,
            timeout=httpx2.Timeout(**timeouts) if timeouts else None,
        )
        try:
            response = await self._http.send(upstream, stream=True)
        except httpx2.ConnectError as exc:
            raise AgentUnavailable(
                f"the server holding the workspace agent's link ({address}) cannot be reached: {exc}",
                request=request,
            ) from None
        refused = response.headers.get(ERROR_HEADER)
        if refused is not None:
            try:
                body = orjson.loads(await response.aread())
                reason = f"{body.get('message')}" + (f" ({body['detail']})" if body.get("detail") else "")
            except (ValueError, AttributeError, httpx2.TransportError):
                reason = f"the server holding the link answered {response.status_code}"
            finally:
                await response.aclose()
            if refused == "unavailable":
                raise AgentUnavailable(reason, request=request)
            raise httpx2.ReadError(reason, request=request)
        return httpx2.Response(
            response.status_code,
            headers=_passed_on(list(response.headers.raw)),
            stream=_Relayed(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()


async def _pieces(request: httpx2.Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream:  # type: ignore[union-attr]
        yield chunk


class _Relayed(httpx2.AsyncByteStream):
    """The holder's answer, passed on as it comes; closing it early closes the connection, which
    cancels the stream on the link."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class RelayTransport(httpx2.AsyncBaseTransport):
    """Requests for one workspace, sent through the replica at ``address`` that holds its link."""

    def __init__(self, client: RelayClient, address: str, workspace_id: str) -> None:
        self._client = client
        self._address = address
        self._workspace_id = workspace_id

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._client.send(self._address, self._workspace_id, request)


# ---- the replica that holds the link -------------------------------------------------------------

# (scope, the secret the caller sent) → None when it may relay, else (status, message, detail)
Authorize = Callable[[Scope, str | None], tuple[int, str, str] | None]


class _Gone(Exception):
    """The calling replica hung up."""


class RelayEndpoint:
    """``/internal/v0/relay/{workspace_id}``: an ASGI app (not a FastAPI route, so that a caller's
    hang-up is seen while the agent has not answered yet). ``bind`` gives it its parts at start."""

    def __init__(self) -> None:
        self._session: Callable[[str], Session | None] | None = None
        self._why: Callable[[str], str] = lambda _: "not connected"
        self._authorize: Authorize | None = None

    def bind(
        self, session: Callable[[str], Session | None], why: Callable[[str], str], authorize: Authorize
    ) -> None:
        self._session, self._why, self._authorize = session, why, authorize

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in scope["headers"]}
        if self._session is None or self._authorize is None:
            await _error(send, 503, "the server is starting", "try again")
            return
        refused = self._authorize(scope, headers.get(SECRET_HEADER))
        if refused is not None:
            await _error(send, *refused)
            return
        target = headers.get(TARGET_HEADER, "")
        workspace_id = str(scope.get("path_params", {}).get("workspace_id", ""))
        if not target.startswith("/"):
            await _error(
                send, 400, "a relayed request needs its target", f"send {TARGET_HEADER}: /path?query"
            )
            return
        session = self._session(workspace_id)
        if session is None:
            await _error(send, 502, self._why(workspace_id), None, relay_error="unavailable")
            return
        await _relay(session, scope, receive, send, target)


async def _relay(session: Session, scope: Scope, receive: Receive, send: Send, target: str) -> None:
    body_done = asyncio.Event()
    gone = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                raise _Gone
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                body_done.set()
                return

    async def watch() -> None:
        await body_done.wait()
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    request = httpx2.Request(
        scope["method"],
        RELAY_BASE_URL + target,
        headers=_passed_on(list(scope["headers"])),
        content=body(),
    )

    async def answer() -> None:
        try:
            response = await exchange(session, request)
        except (httpx2.TransportError, AgentUnavailable) as exc:
            await _error(
                send, 502, f"the link to the workspace agent failed: {exc}", None, relay_error="failed"
            )
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": _passed_on(list(response.headers.raw)),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()  # before its end: cancels the stream on the link

    watcher = asyncio.ensure_future(watch())
    work = asyncio.ensure_future(answer())
    hung_up = asyncio.ensure_future(gone.wait())
    try:
        await asyncio.wait({work, hung_up}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # the calling replica gave up: so does the stream on the link
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError, _Gone):
            await work
    finally:
        for task in (watcher, hung_up):
            task.cancel()
        await asyncio.gather(watcher, hung_up, return_exceptions=True)


async def _error(
    send: Send, status: int, message: str, detail: str | None, *, relay_error: str | None = None
) -> None:
    body = orjson.dumps({"message": message, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if relay_error is not None:
        headers.append((ERROR_HEADER.encode(), relay_error.encode()))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
