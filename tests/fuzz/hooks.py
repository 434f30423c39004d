"""Schemathesis hooks for the fuzz runs (loaded through SCHEMATHESIS_HOOKS).

The fuzzer may send anything, but nothing it sends may act outside the test: every path is
turned into a file name inside the workspace, every command into ``true``, and every URL the
chat server would dial into a closed port on 127.0.0.1. The rest of each request is left as
generated (types, sizes, odd Unicode), so the servers' validation is what is tested.
"""

from __future__ import annotations

import hashlib
from typing import Any

import schemathesis

CLOSED_URL = "http://127.0.0.1:9/fuzz"
_PATH_FIELDS = ("path", "cwd")
_URL_FIELDS = ("url", "agent_url")


def _inside(value: str) -> str:
    return "fuzz-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _tame(body: Any) -> None:
    if isinstance(body, list):
        for item in body:
            _tame(item)
        return
    if not isinstance(body, dict):
        return
    for key in _PATH_FIELDS:
        if isinstance(body.get(key), str):
            body[key] = _inside(body[key])
    for key in _URL_FIELDS:
        if isinstance(body.get(key), str):
            body[key] = CLOSED_URL
    if isinstance(body.get("command"), str):
        body["command"] = "true"
    for value in body.values():
        if isinstance(value, (dict, list)):
            _tame(value)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    _tame(case.body)
