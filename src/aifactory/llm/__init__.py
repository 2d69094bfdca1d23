"""Language models: the `LLM` protocol and its providers.

Workers depend on the `LLM` protocol only. The provider (and the `openai` SDK under it, a
quarter second to import) loads on first use of `OpenAIProvider` or `LLMConfig.build`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .base import LLM, LLMReply, Message, TokenUsage
from .config import DEFAULT_LLM_MODEL, LLMConfig
from .prices import DEFAULT_MODEL_PRICES, ModelPrice, PriceTable

if TYPE_CHECKING:
    from .openai_provider import DEFAULT_OPENAI_BASE_URL, MODEL_RETRY, OpenAIProvider

__all__ = [
    "DEFAULT_LLM_MODEL",
    "DEFAULT_MODEL_PRICES",
    "DEFAULT_OPENAI_BASE_URL",
    "LLM",
    "MODEL_RETRY",
    "LLMConfig",
    "LLMReply",
    "Message",
    "ModelPrice",
    "OpenAIProvider",
    "PriceTable",
    "TokenUsage",
]

_LAZY = {
    "DEFAULT_OPENAI_BASE_URL": ".openai_provider",
    "MODEL_RETRY": ".openai_provider",
    "OpenAIProvider": ".openai_provider",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
