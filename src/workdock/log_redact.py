"""No secret in any log line: one logging filter that blanks them, on every handler both servers use.

What it blanks: the values of secret-looking query parameters (``/login?code=...``,
``?token=...``), the credentials after an authorization scheme (``Bearer ...``), and anything
shaped like one of our own tokens (``wd_...``, ``wdl_...``), wherever in a line they appear.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_PARAMS = (
    "code|token|access_token|refresh_token|id_token|api_key|apikey|key|secret|password|session|auth"
)
_PATTERNS = (
    (re.compile(rf"([?&;](?:{_SECRET_PARAMS})=)[^&;#\s\"']+", re.IGNORECASE), rf"\1{REDACTED}"),
    (re.compile(r"\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1\2{REDACTED}"),
    (re.compile(r"\bwd[a-z]?_[A-Za-z0-9_-]{16,}"), REDACTED),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and arguments in place (uvicorn's access formatter reads the
    arguments one by one, so they are redacted each, not only the formatted line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``logger`` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
