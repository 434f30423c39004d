"""Answering a running turn's requests for input: the one function the API calls.

The question lives with the turn that asked it (``TurnRunner.questions``); an answer for a chat
whose turn runs elsewhere would be relayed from here.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types

from workdock.chat.tools.base import Action
from workdock.mcp.questions import Questions


def answer_elicitation(
    questions: Questions, chat_id: str, elicitation_id: str, action: Action, content: dict[str, Any] | None
) -> types.ElicitResult:
    """Take the answer, or raise ``QuestionError``: 404 (not this chat's, or over), 409 (answered
    already), 400 (content that does not fit the requested schema)."""
    return questions.answer(elicitation_id, action, content, owner=chat_id)
