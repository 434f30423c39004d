"""The SDK's tracing span around each request it sends, skipped while nothing traces.

``mcp`` opens an OpenTelemetry span for every request. With no tracer provider configured (we
configure none) that span records nothing, yet opening and closing it was a tenth of the agent's
CPU per tool call (py-spy under the call-tool benchmark). While OpenTelemetry has no provider it
is skipped; once one is set (in code, or by ``OTEL_PYTHON_TRACER_PROVIDER``) the SDK's own span
is used again, so tracing works as the SDK documents it.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from mcp.server import _otel as server_otel
from mcp.shared import jsonrpc_dispatcher
from mcp.shared._otel import otel_span as _sdk_span
from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER

_UNTRACED: AbstractContextManager[trace.Span] = nullcontext(trace.INVALID_SPAN)


# Asked for each call: ``get_tracer_provider`` looks the variable up in os.environ every time no
# provider is set, which showed in a profile. OpenTelemetry keeps the provider set in code in
# ``_TRACER_PROVIDER`` (read only if it still does); the variable is read once, at start.
_FROM_ENV = OTEL_PYTHON_TRACER_PROVIDER in os.environ
_KEEPS_PROVIDER = hasattr(trace, "_TRACER_PROVIDER")


def tracing() -> bool:
    """Whether OpenTelemetry has a tracer provider (the SDK's spans then record)."""
    if _KEEPS_PROVIDER and not _FROM_ENV and trace._TRACER_PROVIDER is None:
        return False
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _span(name: str, **options: Any) -> AbstractContextManager[trace.Span]:
    if not tracing():
        return _UNTRACED  # no provider: the SDK's span would be a no-op span
    return _sdk_span(name, **options)


def skip_untraced_spans() -> None:
    """Route the SDK's request spans (sent, and served by ``/mcp``) through :func:`_span` (idempotent)."""
    jsonrpc_dispatcher.otel_span = _span  # type: ignore[attr-defined,assignment]
    server_otel.otel_span = _span  # type: ignore[attr-defined,assignment]
