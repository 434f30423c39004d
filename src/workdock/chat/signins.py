"""Sign-ins to workspace servers begun from the web UI, waiting for their callback.

The agent makes the authorization URL and alone holds its PKCE verifier; what the chat server
keeps is which workspace, server and user a ``state`` belongs to, so the callback
(``GET /oauth/callback``) hands the code to the right agent without taking the browser's word for
it. Each record is used once, lives ten minutes, and only so many are kept (the oldest go first).
The records live in this process: a callback that reaches another replica finds none.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

TTL_S = 600.0
LIMIT = 1024


@dataclass(frozen=True)
class PendingSignIn:
    user_id: str
    workspace_id: str
    server: str
    expires_at: float


class PendingSignIns:
    def __init__(self, ttl: float = TTL_S, limit: int = LIMIT) -> None:
        self.ttl = ttl
        self.limit = limit
        self._by_state: OrderedDict[str, PendingSignIn] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_state)

    def add(self, state: str, user_id: str, workspace_id: str, server: str) -> None:
        self._expire()
        # A fresh start of the same server by the same user voids the earlier one (the agent did).
        for old, pending in list(self._by_state.items()):
            if (pending.user_id, pending.workspace_id, pending.server) == (user_id, workspace_id, server):
                del self._by_state[old]
        self._by_state[state] = PendingSignIn(user_id, workspace_id, server, time.monotonic() + self.ttl)
        while len(self._by_state) > self.limit:
            self._by_state.popitem(last=False)

    def take(self, state: str, user_id: str) -> PendingSignIn | None:
        """The sign-in this state belongs to, once, and only for the user who started it."""
        self._expire()
        pending = self._by_state.get(state)
        if pending is None or pending.user_id != user_id:
            return None
        del self._by_state[state]
        return pending

    def _expire(self) -> None:
        now = time.monotonic()
        while self._by_state:
            state, pending = next(iter(self._by_state.items()))
            if pending.expires_at > now:
                break
            del self._by_state[state]
