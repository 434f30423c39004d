"""What both servers' OpenAPI documents say about errors and auth, so that they tell the truth.

Every error has the one shape (``ErrorBody``); a route lists exactly the statuses it can answer.
FastAPI documents a 422 for every route that validates input, but our handlers answer 400: the
422 is taken out and a 400 put in its place.
"""

from __future__ import annotations

from typing import Any

from workdock.agentapi import ErrorBody

ERROR_TEXT = {
    400: "Bad request: malformed JSON, a missing or wrongly typed field, a value out of range",
    401: "Missing or wrong credentials",
    403: "Not allowed for this user, or permission denied on the workspace's disk",
    404: "Not found",
    409: "Conflict with the current state",
    413: "The request body or a field is over its size limit",
    429: "Too many failed authentication attempts from this address; see Retry-After",
    499: "The client closed the request",
    502: "The upstream server is not ready, died, or answered with a protocol error",
    503: "Unavailable: shutting down, or the database cannot be written or reached",
    504: "The call outlived its timeout",
    507: "No space left on the device",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, all in the one error shape."""
    return {
        status: {
            "model": ErrorBody,
            "description": ERROR_TEXT[status],
            **(
                {"headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}}
                if status == 429
                else {}
            ),
        }
        for status in sorted(set(statuses))
    }


def without_422(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's 422 entries (and their schemas) and make sure such a route documents 400."""
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {
                    "description": ERROR_TEXT[400],
                    "content": {"application/json": {"schema": error_ref}},
                }
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema
