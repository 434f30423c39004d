"""Models named ``provider:model``, resolved to pydantic-ai models. Besides this module, only the
turn (turn.py, convert.py, toolset.py) and model_errors.py touch pydantic-ai."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic_ai.models import Model

HOW_TO_CONFIGURE = (
    "No model is configured. Set WORKDOCK_MODELS to a comma-separated list of provider:model names "
    "(the first is the default) and restart the server, e.g. WORKDOCK_MODELS=openai:gpt-4.1 with "
    "OPENAI_API_KEY, WORKDOCK_MODELS=anthropic:claude-sonnet-4-5 with ANTHROPIC_API_KEY, "
    "WORKDOCK_MODELS=ollama:qwen3 (OLLAMA_BASE_URL, default http://127.0.0.1:11434/v1), or "
    "WORKDOCK_MODELS=openai:NAME with OPENAI_BASE_URL for any OpenAI-compatible endpoint."
)

PROVIDERS = ("openai", "anthropic", "ollama")

# The chat server's own settings and secrets: the providers' keys and endpoints (the model layer and
# the providers' SDKs read OPENAI_*, ANTHROPIC_*, OLLAMA_*) and every WORKDOCK_* variable (tokens,
# database URL, keys). A workspace agent running inside the server (`workdock up`) hands none of them
# to the workspace's commands and MCP servers.
SERVER_ENV_PREFIXES = ("WORKDOCK_", *(f"{provider.upper()}_" for provider in PROVIDERS))


def server_only_env(name: str) -> bool:
    """Whether the environment variable ``name`` belongs to the chat server alone."""
    return name.startswith(SERVER_ENV_PREFIXES)


class ModelError(Exception):
    """The model cannot be used; the message says what to do about it."""


def parse_models(value: str | None) -> list[str]:
    return list(parse_models_with_windows(value))


def parse_models_with_windows(value: str | None) -> dict[str, int | None]:
    """``provider:model`` names in order, each with the context window given as ``@TOKENS``
    (``openai:my-model@128000``), or None where none was given."""
    models: dict[str, int | None] = {}
    for entry in (entry.strip() for entry in (value or "").split(",")):
        if not entry:
            continue
        name, at, window = entry.partition("@")
        provider, _, model = name.partition(":")
        if not model or provider not in PROVIDERS:
            raise ValueError(
                f"model {entry!r}: expected provider:model with provider one of {', '.join(PROVIDERS)}"
            )
        if at and not (window.isdigit() and int(window) > 0):
            raise ValueError(f"model {entry!r}: the context window after @ must be a number of tokens")
        models[name] = int(window) if at else None
    return models


def build_model(name: str, env: Mapping[str, str] | None = None) -> Model:
    env = os.environ if env is None else env
    provider, _, model_name = name.partition(":")
    try:
        if provider == "openai":
            # Chat Completions, not Responses: it is what every OpenAI-compatible endpoint speaks,
            # so OPENAI_BASE_URL works with vLLM, llama.cpp, LM Studio, OpenRouter and OpenAI itself.
            from pydantic_ai.models.openai import OpenAIChatModel
            from pydantic_ai.providers.openai import OpenAIProvider

            return OpenAIChatModel(
                model_name,
                provider=OpenAIProvider(
                    base_url=env.get("OPENAI_BASE_URL"), api_key=env.get("OPENAI_API_KEY")
                ),
            )
        if provider == "anthropic":
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider

            return AnthropicModel(
                model_name,
                provider=AnthropicProvider(
                    api_key=env.get("ANTHROPIC_API_KEY"), base_url=env.get("ANTHROPIC_BASE_URL")
                ),
            )
        if provider == "ollama":
            from pydantic_ai.models.ollama import OllamaModel
            from pydantic_ai.providers.ollama import OllamaProvider

            base_url = env.get("OLLAMA_BASE_URL") or "http://127.0.0.1:11434/v1"
            return OllamaModel(model_name, provider=OllamaProvider(base_url=base_url))
    except Exception as exc:  # missing key, bad URL: say so in the turn, do not crash the server
        raise ModelError(f"model {name!r} cannot be used: {exc}") from exc
    raise ModelError(f"model {name!r}: unknown provider {provider!r} (use one of {', '.join(PROVIDERS)})")


@dataclass
class ModelCatalog:
    """The models users may pick (``WORKDOCK_MODELS``); the first is the default."""

    names: list[str]
    env: Mapping[str, str] | None = None  # provider settings; default: the process environment
    windows: dict[str, int] = field(default_factory=dict)  # context windows set with ``@TOKENS``
    _built: dict[str, Model] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelCatalog:
        env = os.environ if env is None else env
        models = parse_models_with_windows(env.get("WORKDOCK_MODELS"))
        return cls(list(models), env, {name: w for name, w in models.items() if w is not None})

    @property
    def default(self) -> str | None:
        return self.names[0] if self.names else None

    def check(self, name: str) -> None:
        if name not in self.names:
            allowed = ", ".join(self.names) or "none configured"
            raise ModelError(f"model {name!r} is not offered (allowed: {allowed})")

    def get(self, name: str | None) -> tuple[str, Model]:
        """The chat's model (or the default), built once and reused for its connection pool."""
        name = name or self.default
        if name is None:
            raise ModelError(HOW_TO_CONFIGURE)
        if name not in self.names:
            raise ModelError(
                f"model {name!r} is no longer offered; pick one of {', '.join(self.names)}"
                if self.names
                else HOW_TO_CONFIGURE
            )
        model = self._built.get(name)
        if model is None:
            model = self._built[name] = build_model(name, self.env)
        return name, model
