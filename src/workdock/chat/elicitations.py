"""Answering a running turn's requests for input, on whichever replica the turn runs.

The question lives with the turn that asked it (the ``Questions`` of the replica holding the chat's
lease). An answer that reaches another replica is sent on to the holder at
``/internal/v0/elicitations/{chat_id}/{elicitation_id}`` with the service secret, and the holder's
verdict (taken, 404, 409, 400) comes back as if it had been answered here.
"""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from workdock.agentapi import ElicitationAnswer
from workdock.chat.replicas import ReplicaRegistry
from workdock.chat.store.repo import Store
from workdock.chat.tools.base import Action
from workdock.http_errors import error_response
from workdock.link.relay import SECRET_HEADER
from workdock.mcp.questions import QuestionError, Questions

ANSWER_PATH = "/internal/v0/elicitations"
FORWARD_TIMEOUT_S = 10.0


class ElicitationAnswers:
    """The one way the API answers a request for input."""

    def __init__(self, questions: Questions, store: Store, replicas: ReplicaRegistry) -> None:
        self.questions = questions
        self.store = store
        self.replicas = replicas
        self._http = httpx2.AsyncClient(timeout=FORWARD_TIMEOUT_S, trust_env=False)

    async def answer(
        self, chat_id: str, elicitation_id: str, action: Action, content: dict[str, Any] | None
    ) -> str:
        """The action taken, or ``QuestionError``: 404 (not this chat's, or over), 409 (answered
        already), 400 (content that does not fit the requested schema), 502 (the replica running
        the turn cannot be reached)."""
        try:
            return self.questions.answer(elicitation_id, action, content, owner=chat_id).action
        except QuestionError as exc:
            if exc.status != 404:
                raise
            address = await self._holder_elsewhere(chat_id)
            if address is None:
                raise
            return await self._forward(address, chat_id, elicitation_id, action, content)

    async def _holder_elsewhere(self, chat_id: str) -> str | None:
        chat = await self.store.get_chat(chat_id)
        owner = chat.lease_owner if chat is not None and chat.status == "running" else None
        if owner is None or owner == self.replicas.id:
            return None
        peer = self.replicas.peer(owner)
        return peer.address if peer is not None and peer.alive else None

    async def _forward(
        self, address: str, chat_id: str, elicitation_id: str, action: Action, content: dict[str, Any] | None
    ) -> str:
        try:
            response = await self._http.post(
                f"http://{address}{ANSWER_PATH}/{chat_id}/{elicitation_id}",
                content=orjson.dumps({"action": action, "content": content}),
                headers={SECRET_HEADER: self.replicas.secret, "content-type": "application/json"},
            )
            body = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise QuestionError(
                502, "the replica running this chat's turn cannot be reached", type(exc).__name__
            ) from exc
        if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("action"), str):
            return str(body["action"])
        if response.status_code in (400, 404, 409) and isinstance(body, dict):
            raise QuestionError(response.status_code, str(body.get("message")), body.get("detail"))
        raise QuestionError(502, "the replica running this chat's turn refused the answer", str(body)[:200])

    async def aclose(self) -> None:
        await self._http.aclose()


async def answer_forwarded(questions: Questions, request: Request) -> JSONResponse:
    """The holder's side: an answer another replica received for a turn that runs here (the
    caller has checked the service secret)."""
    try:
        body = ElicitationAnswer.model_validate_json(await request.body())
    except ValidationError as exc:
        return error_response(400, "not an answer to a request for input", str(exc)[:500])
    chat_id = request.path_params["chat_id"]
    elicitation_id = request.path_params["elicitation_id"]
    try:
        result = questions.answer(elicitation_id, body.action, body.content, owner=chat_id)
    except QuestionError as exc:
        return error_response(exc.status, exc.message, exc.detail)
    return JSONResponse({"action": result.action})
