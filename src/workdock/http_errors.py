"""One error shape for every workdock HTTP API: ``{"message": ..., "detail": ...}``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response


class JSONResponse(Response):
    """JSON rendered by orjson: fast, and it takes the plain dicts our hot paths build."""

    media_type = "application/json"

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


def error_response(
    status: int, message: str, detail: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"message": message, "detail": detail}, status_code=status, headers=headers)


def _describe_validation(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error, ours or the framework's, in the one JSON shape; bad input is a 400."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid request", _describe_validation(list(exc.errors())))


def _error_responses() -> dict[int | str, dict[str, Any]]:
    from workdock.agentapi import ErrorBody

    return {
        code: {"model": ErrorBody, "description": text}
        for code, text in (
            (400, "Bad request"),
            (401, "Missing or wrong bearer token"),
            (404, "Not found"),
            (502, "The upstream server is not ready, died, or answered with a protocol error"),
            (504, "The call outlived its timeout"),
        )
    }


# For OpenAPI: what every error of the API looks like.
ErrorBodyResponses = _error_responses()
