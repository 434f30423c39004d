"""One error shape for every workdock HTTP API: ``{"message": ..., "detail": ...}``."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse as StarletteJSONResponse

logger = logging.getLogger(__name__)


class JSONResponse(StarletteJSONResponse):
    """JSON rendered by orjson: fast, and it takes the plain dicts our hot paths build.

    A subclass of Starlette's JSONResponse, so FastAPI documents a route's response model as JSON.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An error answered to the client as JSON with its own status code."""

    def __init__(
        self, status: int, message: str, detail: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers


class HTTPApiError(StarletteHTTPException):
    """An :class:`ApiError` for code that runs while FastAPI reads a body (a middleware's receive):
    FastAPI passes HTTP exceptions from there on as they are, and turns anything else into a 400."""

    def __init__(self, status: int, message: str, explanation: str | None = None) -> None:
        super().__init__(status, message)
        self.explanation = explanation


def error_response(
    status: int, message: str, detail: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"message": message, "detail": detail}, status_code=status, headers=headers)


def _describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str]:
    for error in errors:
        if error.get("type") == "json_invalid":
            why = str((error.get("ctx") or {}).get("error", "JSON decode error"))
            if "surrogate" in why:
                why += " (strings must be valid Unicode: a lone surrogate such as \\ud800 is refused)"
            return "the body is not valid JSON", why
    parts = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "invalid request", "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, ours or the framework's, in the one JSON shape; bad input is a 400."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        explanation = getattr(exc, "explanation", None)
        return error_response(exc.status_code, str(exc.detail), explanation, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, *_describe_validation(list(exc.errors())))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still a bug, and still logged as one (Starlette re-raises after answering), but the client
        # gets the one error shape rather than a plain-text page.
        return error_response(500, "internal error", "the server failed to answer; see its log")
