"""Request bodies decoded strictly, for every route of both servers.

Python's json module turns ``"\\ud800"`` into a lone surrogate: a str that no UTF-8 encoder
takes, so it fails later, wherever it is written (a file, the database, a response) and as a 500.
orjson refuses it, and invalid UTF-8 too, while decoding: one place, a 400 for every field.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            # orjson.JSONDecodeError is a json.JSONDecodeError: FastAPI answers it as invalid JSON.
            self._json = orjson.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def api_router(**options: Any) -> APIRouter:
    """An APIRouter whose routes decode JSON bodies strictly (use it for every router)."""
    return APIRouter(route_class=StrictJSONRoute, **options)
