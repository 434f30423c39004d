"""Requests for input waiting for a person: each under an id, answered at most once.

The agent keeps one for the streaming call-tool (the caller answers by id); the chat server
keeps one for its turns (the browser or terminal answers). An answer is checked against the
request before it is taken: a form's content against its JSON schema (``jsonschema``), a URL
request's answer carries no content. A field a form's answer leaves out takes the default its
schema gives (SEP-1034), whoever answers (the web UI, the terminal, an agent API caller).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp_types as types
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from workdock.mcp.hooks import declined

Action = Literal["accept", "decline", "cancel"]
DEFAULT_LIMIT = 64  # waiting at once; more are declined at once
REMEMBERED = 1024  # answered ids kept after their question closed: a late second answer is a 409
MAX_PROBLEMS = 5


class QuestionError(Exception):
    """An answer that cannot be taken; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


@dataclass(eq=False)
class Question:
    id: str
    params: types.ElicitRequestParams
    owner: Hashable
    expired: bool = False  # closed before anyone answered (the call ended, the turn was stopped)
    future: asyncio.Future[types.ElicitResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def answered(self) -> bool:
        return self.future.done()

    def describe(self) -> dict[str, Any]:
        """The request as the streams show it: its id, and :func:`describe_request`."""
        return {"id": self.id, **describe_request(self.params)}

    async def wait(self) -> types.ElicitResult:
        return await asyncio.shield(self.future)


class Questions:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._open: dict[str, Question] = {}
        self._answered: OrderedDict[str, Hashable] = OrderedDict()  # closed after an answer → owner

    def __len__(self) -> int:
        return len(self._open)

    def open(self, params: types.ElicitRequestParams, owner: Hashable = None) -> Question | None:
        """A new question under a fresh id, or None when too many are waiting."""
        if len(self._open) >= self.limit:
            return None
        question = Question(secrets.token_urlsafe(12), params, owner)
        self._open[question.id] = question
        return question

    def get(self, question_id: str, owner: Hashable = None) -> Question | None:
        """The question under this id (and of this owner, when one is given)."""
        question = self._open.get(question_id)
        if question is None or (owner is not None and question.owner != owner):
            return None
        return question

    def owned_by(self, owner: Hashable) -> list[Question]:
        return [q for q in self._open.values() if q.owner == owner]

    def answer(
        self, question_id: str, action: Action, content: dict[str, Any] | None, owner: Hashable = None
    ) -> types.ElicitResult:
        """Take the answer: QuestionError 404 (no such question, or its call is over), 409 (it was
        answered already) or 400 (content that does not fit the request)."""
        question = self.get(question_id, owner)
        if question is None:
            if question_id in self._answered and owner in (None, self._answered[question_id]):
                raise QuestionError(409, "already answered", "a request for input takes one answer")
            raise QuestionError(404, "no such request for input", "it was never made, or its call is over")
        if question.answered:
            raise QuestionError(409, "already answered", "a request for input takes one answer")
        result = check_answer(question.params, action, content)
        question.future.set_result(result)
        return result

    def close(self, question: Question) -> None:
        """The question is settled, or its call is over (or gone): forget it. One still waiting
        counts as cancelled; an answered one's id is remembered, so a second answer stays a 409."""
        if self._open.pop(question.id, None) is None:
            return
        if not question.future.done():
            question.expired = True
            question.future.set_result(types.ElicitResult(action="cancel"))
        elif not question.expired:
            self._answered[question.id] = question.owner
            while len(self._answered) > REMEMBERED:
                self._answered.popitem(last=False)


def describe_request(params: types.ElicitRequestParams) -> dict[str, Any]:
    """mode, message, and the requested schema (form) or the URL to open (url)."""
    body: dict[str, Any] = {"mode": params.mode or "form", "message": params.message}
    if isinstance(params, types.ElicitRequestURLParams):
        body["url"] = params.url
    else:
        body["requested_schema"] = params.requested_schema
    return body


def request_params(request: dict[str, Any]) -> types.ElicitRequestParams:
    """The params again from :func:`describe_request`'s shape (as relayed by an agent)."""
    message = str(request.get("message") or "")
    if request.get("mode") == "url":
        return types.ElicitRequestURLParams(message=message, url=str(request.get("url")), elicitation_id="")
    schema = request.get("requested_schema")
    return types.ElicitRequestFormParams(
        message=message, requested_schema=schema if isinstance(schema, dict) else {"type": "object"}
    )


def too_many() -> types.ElicitResult:
    return declined(f"more than {DEFAULT_LIMIT} requests for input are waiting")


def with_defaults(schema: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """``content`` with each property it lacks set to the schema's ``default`` for it (SEP-1034)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return content
    missing = {
        name: field["default"]
        for name, field in properties.items()
        if name not in content and isinstance(field, dict) and "default" in field
    }
    return {**content, **missing} if missing else content


def check_answer(
    params: types.ElicitRequestParams, action: Action, content: dict[str, Any] | None
) -> types.ElicitResult:
    if action != "accept":
        if content is not None:
            raise QuestionError(400, "content goes with accept only", f"the action is {action!r}")
        return types.ElicitResult(action=action)
    if isinstance(params, types.ElicitRequestURLParams):
        if content is not None:
            raise QuestionError(400, "a URL request takes no content", "accept says the user opened it")
        return types.ElicitResult(action="accept")
    content = with_defaults(params.requested_schema, content if content is not None else {})
    try:
        validator = Draft202012Validator(params.requested_schema)
        problems = sorted(validator.iter_errors(content), key=lambda e: list(e.absolute_path))
    except SchemaError as exc:  # the server's schema is broken: the answer cannot be checked
        raise QuestionError(400, "the request's schema is not valid JSON Schema", exc.message) from exc
    if problems:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.absolute_path) or 'content'}: {e.message}"
            for e in problems[:MAX_PROBLEMS]
        )
        raise QuestionError(400, "the answer does not fit the requested schema", detail)
    try:
        return types.ElicitResult(action="accept", content=content)
    except ValueError as exc:  # values the protocol cannot carry (nested objects)
        raise QuestionError(400, "the answer holds values a form cannot carry", str(exc)) from exc
