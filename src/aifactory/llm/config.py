"""`LLMConfig`: which model to use and how to reach it, as one value; `build()` makes the `LLM`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs

from .._exceptions import BadInputError
from .base import LLM
from .prices import PriceTable

__all__ = ["DEFAULT_LLM_MODEL", "LLMConfig"]

DEFAULT_LLM_MODEL = "gpt-4o-mini"
# Servers that need no key (a local vLLM, Ollama or llama.cpp) still get a bearer token,
# because the SDK insists on one; this one says plainly that it is not a secret.
_NO_KEY = "no-key-configured"


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise BadInputError(f"{attribute.name} must be positive", details={attribute.name: value})


def _not_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise BadInputError(
            f"{attribute.name} must not be negative", details={attribute.name: value}
        )


def _provider(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value != "openai":
        raise BadInputError(
            f"unknown LLM provider {value!r}; the only one is 'openai' (which also serves "
            "any OpenAI-compatible server through base_url)",
            details={"provider": value},
        )


def _model(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value:
        raise BadInputError("an LLM config needs a model name")


@attrs.frozen
class LLMConfig:
    """How to reach a language model.

    - `provider`: `"openai"`, which also covers OpenAI-compatible servers via `base_url`.
    - `model`: the model name; the key into `prices`.
    - `api_key`: kept out of `repr` and `str`; `None` for servers that need none.
    - `base_url`: the API root of a compatible server, e.g. `http://127.0.0.1:8000/v1`;
      `None` means OpenAI.
    - `timeout_s`: per HTTP request; `max_retries`: retries of 429, 5xx and connection
      errors.
    - `prices`: turns token usage into USD.

    Raises `BadInputError` for an unknown provider, an empty model, a timeout that is not
    positive or a negative retry count.
    """

    provider: Literal["openai"] = attrs.field(default="openai", validator=_provider)
    model: str = attrs.field(default=DEFAULT_LLM_MODEL, validator=_model)
    api_key: str | None = attrs.field(default=None, repr=False)
    base_url: str | None = None
    timeout_s: float = attrs.field(default=60.0, validator=_positive)
    max_retries: int = attrs.field(default=3, validator=_not_negative)
    prices: PriceTable = attrs.field(factory=PriceTable)

    def build(self) -> LLM:
        """The configured `LLM`, with an HTTP client of its own (an `OpenAIProvider`).

        Raises `BadInputError` when the configuration cannot make a provider.
        """
        from .openai_provider import OpenAIProvider  # here, so the SDK loads only when used

        return OpenAIProvider(
            self.model,
            api_key=self.api_key or _NO_KEY,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            prices=self.prices,
        )

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> LLMConfig | None:
        """The config that `env` describes, or `None` when it names neither a key nor a server.

        Reads `AIFACTORY_LLM_MODEL` (default `gpt-4o-mini`), `AIFACTORY_LLM_BASE_URL`, and
        the key from `AIFACTORY_LLM_API_KEY`, else `OPENAI_API_KEY`. Empty values count as
        unset. Only the CLI calls this, with `os.environ`; library code receives a config.

        Raises `BadInputError` when a value is invalid.
        """
        key = env.get("AIFACTORY_LLM_API_KEY") or env.get("OPENAI_API_KEY") or None
        base_url = env.get("AIFACTORY_LLM_BASE_URL") or None
        if key is None and base_url is None:
            return None
        return cls(
            model=env.get("AIFACTORY_LLM_MODEL") or DEFAULT_LLM_MODEL,
            api_key=key,
            base_url=base_url,
        )
