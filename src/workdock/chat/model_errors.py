"""A failed model call, told in one line: which model, at which endpoint, what went wrong, what to check.

The user sees this line (stream ``error`` chunk, stored error part, ``workdock chat``); the
provider's exception with its traceback goes to the server's log at debug level only.
"""

from __future__ import annotations

import httpx2
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelQuotaExceededError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
)
from pydantic_ai.models import Model

MODEL_FAILURES = (ModelAPIError, UnexpectedModelBehavior)
"""What a model call raises when the provider (not our code) failed."""

# The variables to check for each provider: its key and its endpoint.
_KEY = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_ENDPOINT = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "ollama": "OLLAMA_BASE_URL"}
_QUOTED = 200


def describe_model_error(name: str, model: Model, exc: ModelAPIError | UnexpectedModelBehavior) -> str:
    """``name`` is the chat's ``provider:model``; ``model`` the model built for it."""
    provider = name.partition(":")[0]
    endpoint = _endpoint(model)
    key = _KEY.get(provider)
    endpoint_var = _ENDPOINT.get(provider, "the provider's base URL")
    who = f"model {name} at {endpoint}"
    if isinstance(exc, UnexpectedModelBehavior):
        return f"{who} sent an answer that could not be read ({_one_line(exc.message)})"
    detail = _detail(exc)
    if isinstance(exc, ModelConnectionError):
        what = "timed out" if isinstance(exc, ModelTimeoutError) else "could not be reached"
        return f"{who} {what} ({_cause(exc)}): check that it is running and that {endpoint_var} is right"
    if isinstance(exc, ModelRequestTimeout):
        return f"{who} did not answer in time ({_one_line(exc.message)}): try again, or pick another model"
    if isinstance(exc, ModelAuthenticationError) or _status(exc) in (401, 403):
        check = f"check {key}" if key else "check the endpoint's credentials"
        return f"{who} refused the credentials ({detail}): {check}"
    if isinstance(exc, ModelNotFoundError) or _status(exc) == 404:
        return (
            f"{who} does not know this model ({detail}): check the name in WORKDOCK_MODELS "
            f"and that {endpoint_var} is right"
        )
    if isinstance(exc, ModelRateLimitError):
        return f"{who} is rate limiting this account ({detail}): wait a moment and send again"
    if isinstance(exc, ModelQuotaExceededError):
        return f"{who} says the account's quota is used up ({detail}): check its plan and billing"
    if isinstance(exc, ModelContextWindowExceededError):
        return f"{who}: the conversation no longer fits its context window ({detail}): start a new chat"
    if isinstance(exc, ModelRequestRejectedError):
        return (
            f"{who} rejected the request ({detail}): check that the endpoint serves this model "
            "and that the model takes tool calls"
        )
    if isinstance(exc, ModelServerError | ModelUnavailableError) or _status(exc) >= 500:
        return f"{who} failed on its side ({detail}): try again later, or see the endpoint's own log"
    return f"{who} failed ({detail})"


def _endpoint(model: Model) -> str:
    base = model.base_url
    if not base:
        return "its default endpoint"
    try:
        url = httpx2.URL(base)
    except httpx2.InvalidURL:
        return "its configured endpoint"
    # Userinfo and query can carry keys; they have no place in a message.
    return str(url.copy_with(userinfo=b"", query=None, fragment=None)).rstrip("/")


def _status(exc: ModelAPIError) -> int:
    return exc.status_code if isinstance(exc, ModelHTTPError) else 0


def _detail(exc: ModelAPIError) -> str:
    """``HTTP 401: Incorrect API key provided``: the status and the provider's own words."""
    said = _provider_message(exc.body)
    status = _status(exc)
    if status and said:
        return f"HTTP {status}: {said}"
    if status:
        return f"HTTP {status}"
    return said or _one_line(exc.message)


def _provider_message(body: object) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        message = body.get("message") or (error.get("message") if isinstance(error, dict) else error)
        return _one_line(str(message)) if message else ""
    if isinstance(body, str | bytes):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return "" if text.lstrip().startswith("<") else _one_line(text)  # not an HTML error page
    return ""


def _cause(exc: BaseException) -> str:
    """The innermost reason (``[Errno 111] Connection refused``), not the wrappers' "Connection error."."""
    reason = str(exc)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if str(current):
            reason = str(current)
        current = current.__cause__ or current.__context__
    return _one_line(reason)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _QUOTED else line[:_QUOTED] + "…"
