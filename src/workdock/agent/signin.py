"""`workdock auth SERVER`: finish a server's OAuth sign-in from the terminal.

The agent started the flow and holds its PKCE verifier and state; its authorization URL redirects
to a loopback address (``http://127.0.0.1:PORT/callback``). This listens there, prints the URL (and
opens a browser when there is one), and hands the code that comes back to the agent, which
checks the state and finishes. A sign-in begun from the web UI redirects to the chat server
instead: this starts it again for the loopback address (``auth/start``).
"""

from __future__ import annotations

import os
import sys
import webbrowser
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from workdock import agentapi
from workdock.mcp.oauth import CALLBACK_PATH

WAIT_FOR_URL = 30.0  # a server that is still connecting gets this long to ask for sign-in
WAIT_FOR_READY = 60.0  # after the code: token exchange and connect


class SignInFailed(Exception):
    pass


def _page(title: str, text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><meta charset=utf-8><title>{title}</title>"
        f"<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{text}</p>",
        status_code=status,
    )


def has_browser() -> bool:
    """A browser can be opened here (not over SSH, not headless): else only the URL is printed."""
    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def _server_status(client: agentapi.AgentClient, name: str) -> agentapi.ServerStatus:
    for server in (await client.servers()).servers:
        if server.name == name:
            return server
    raise SignInFailed(f"the agent has no server named {name!r}")


async def _authorization_url(client: agentapi.AgentClient, name: str) -> str | None:
    """The URL to sign in at; ``None`` when the server is ready (signed in already)."""
    with anyio.move_on_after(WAIT_FOR_URL):
        while True:
            server = await _server_status(client, name)
            if server.state == "needs_auth" and server.authorization_url:
                return server.authorization_url
            if server.state == "ready":
                return None
            if server.state in ("failed", "disabled"):
                raise SignInFailed(
                    f"server {name!r} is {server.state}: {server.error or 'see workdock status'}"
                )
            await anyio.sleep(0.5)
    raise SignInFailed(f"server {name!r} did not ask for sign-in within {WAIT_FOR_URL:g} s")


def _loopback(url: str) -> tuple[str, int] | None:
    """Where the authorization server will send the code (the URL's ``redirect_uri``), if it is
    this command's loopback callback (a chat server on 127.0.0.1 has another path)."""
    redirect = (parse_qs(urlsplit(url).query).get("redirect_uri") or [""])[0]
    target = urlsplit(redirect)
    if target.scheme != "http" or target.hostname not in ("127.0.0.1", "localhost") or not target.port:
        return None
    if target.path != CALLBACK_PATH:
        return None
    return "127.0.0.1", target.port


async def _loopback_sign_in(client: agentapi.AgentClient, name: str, url: str) -> tuple[str, tuple[str, int]]:
    """The URL to open and where its answer comes, restarting a sign-in begun elsewhere (the web UI)."""
    if (address := _loopback(url)) is not None:
        return url, address
    try:
        url = await client.auth_start(name, None)
    except agentapi.AgentError as exc:
        raise SignInFailed(f"cannot start the sign-in again for this terminal: {exc.message}") from None
    if (address := _loopback(url)) is None:
        raise SignInFailed("this sign-in does not come back to a loopback address; finish it in the web UI")
    return url, address


async def sign_in(
    client: agentapi.AgentClient,
    name: str,
    *,
    open_browser: bool,
    timeout: float,
    say: Callable[[str], None],
) -> None:
    url = await _authorization_url(client, name)
    if url is None:
        say(f"{name} is signed in and ready.")
        return
    url, (host, port) = await _loopback_sign_in(client, name, url)
    delivered = anyio.Event()
    outcome: list[str] = []

    async def callback(request: Request) -> HTMLResponse:
        params = request.query_params
        if error := params.get("error"):
            outcome.append(f"the authorization server refused: {error} {params.get('error_description', '')}")
            delivered.set()
            return _page("Sign-in refused", f"{error}. You can close this tab.", 400)
        code, state = params.get("code"), params.get("state")
        if not code or not state:
            return _page("Not a sign-in", "This address takes the authorization server's answer.", 400)
        try:
            await client.auth_callback(
                name, agentapi.AuthCallback(code=code, state=state, iss=params.get("iss"))
            )
        except agentapi.AgentError as exc:
            outcome.append(exc.message)
            delivered.set()
            return _page("Sign-in failed", f"{exc.message}. Run workdock auth again.", 400)
        delivered.set()
        return _page("Signed in", f"workdock is connecting to {name}. You can close this tab.")

    app = Starlette(routes=[Route(CALLBACK_PATH, callback)])
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.move_on_after(5):
            while not server.started:
                await anyio.sleep(0.05)
        if not server.started:
            raise SignInFailed(f"cannot listen on {host}:{port} for the sign-in's answer (port in use?)")
        say(f"Sign in to {name} at:\n{url}")
        if open_browser and has_browser():
            webbrowser.open(url)
        say(f"Waiting for the answer on http://{host}:{port}{CALLBACK_PATH} ...")
        with anyio.move_on_after(timeout) as waited:
            await delivered.wait()
        server.should_exit = True
    if waited.cancelled_caught:
        raise SignInFailed(f"no answer within {timeout:g} s")
    if outcome:
        raise SignInFailed(outcome[0])
    with anyio.move_on_after(WAIT_FOR_READY):
        while (status := await _server_status(client, name)).state != "ready":
            if status.state == "failed":
                raise SignInFailed(f"server {name!r} failed after sign-in: {status.error}")
            await anyio.sleep(0.3)
        say(f"{name} is signed in and ready ({status.tool_count} tools).")
        return
    raise SignInFailed(f"server {name!r} is not ready {WAIT_FOR_READY:g} s after sign-in")
