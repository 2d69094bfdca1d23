"""Language models: the `LLM` protocol and its providers."""

from .base import LLM, LLMReply, Message, TokenUsage

__all__ = ["LLM", "LLMReply", "Message", "TokenUsage"]
