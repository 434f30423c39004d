"""Failed-authentication counting per client address, for both HTTP servers.

After ``limit`` failed attempts from one address within ``window`` seconds, that address is
refused (429 with ``Retry-After``) until the oldest of those failures is ``window`` seconds old.
A correct token does not lift the block early: a guesser that finds one would otherwise be told so.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

DEFAULT_LIMIT = 10
DEFAULT_WINDOW_S = 60.0
LIMIT_ENV = "WORKDOCK_AUTH_FAILURE_LIMIT"
WINDOW_ENV = "WORKDOCK_AUTH_FAILURE_WINDOW"
# Addresses remembered at most: a flood from many addresses cannot grow memory without bound.
MAX_ADDRESSES = 10_000


@dataclass(frozen=True)
class RateLimitSettings:
    limit: int = DEFAULT_LIMIT  # failed attempts allowed per window; 0 turns the limit off
    window: float = DEFAULT_WINDOW_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RateLimitSettings:
        environ = os.environ if environ is None else environ
        try:
            limit = int(environ.get(LIMIT_ENV, DEFAULT_LIMIT))
            window = float(environ.get(WINDOW_ENV, DEFAULT_WINDOW_S))
        except ValueError as exc:
            raise ValueError(f"{LIMIT_ENV} must be an integer and {WINDOW_ENV} a number of seconds") from exc
        if limit < 0 or window <= 0:
            raise ValueError(f"{LIMIT_ENV} must be >= 0 and {WINDOW_ENV} > 0")
        return cls(limit, window)


class FailedAttempts:
    def __init__(
        self, settings: RateLimitSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or RateLimitSettings()
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or ``None`` when it is not blocked."""
        limit, window = self.settings.limit, self.settings.window
        if limit == 0:
            return None
        failures = self._failures.get(address)
        if failures is None or len(failures) < limit:
            return None
        wait = failures[0] + window - self._clock()
        if wait <= 0:
            return None
        return max(1, math.ceil(wait))

    def record_failure(self, address: str) -> None:
        limit, window = self.settings.limit, self.settings.window
        if limit == 0:
            return
        now = self._clock()
        failures = self._failures.get(address)
        if failures is None:
            failures = self._failures[address] = deque(maxlen=limit)
            if len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)  # the address least recently seen failing
        else:
            self._failures.move_to_end(address)
        while failures and now - failures[0] >= window:
            failures.popleft()
        failures.append(now)


def client_address(scope: Mapping[str, object]) -> str:
    """The address failures are counted for: the peer, or behind a trusted proxy the forwarded
    client (uvicorn's proxy-header support rewrites ``scope["client"]`` for trusted peers only)."""
    client = scope.get("client")
    if isinstance(client, (tuple, list)) and client:
        return str(client[0])
    return "unknown"


def blocked_error(wait: int) -> tuple[str, str]:
    """Message and detail of the 429 answer (both servers send them with ``Retry-After: wait``)."""
    return "too many failed authentication attempts", f"try again in {wait} s"
