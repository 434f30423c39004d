"""The browser UI: static files served by the chat server at ``/``.

Plain ES modules and CSS, no build step. Served from the package directory, so an installed
wheel and a source checkout behave the same.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

WEB_DIR = Path(__file__).parent

# No inline script or style attribute can run; nothing is loaded from elsewhere. Tool results may
# carry images as data: URLs. Trusted Types make any accidental `innerHTML = string` throw, so the
# only way content reaches the page is through DOM nodes and textContent.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

# The files change with every release and there is no build step to fingerprint them: let the
# browser keep them but ask every time (a 304 is cheap), so an upgrade is never half-applied.
CACHE_CONTROL = "no-cache"


class _Static(StaticFiles):
    """StaticFiles with our headers on every answer (304s included)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, html=False, check_dir=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                for name, value in {**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL}.items():
                    headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)


def index_response(status_code: int = 200) -> Response:
    """The app's page (a used login link answers 401 with it: the app then says what to do)."""
    return FileResponse(
        WEB_DIR / "index.html",
        status_code=status_code,
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL},
    )


def mount(app: FastAPI) -> None:
    """Serve the UI: ``/`` is the app, ``/assets/...`` its files. Call after all API routes."""

    @app.get("/", include_in_schema=False)
    async def index(_: Request) -> Response:
        return index_response()

    static: ASGIApp = _Static(WEB_DIR / "assets")
    app.mount("/assets", static, name="web-assets")
