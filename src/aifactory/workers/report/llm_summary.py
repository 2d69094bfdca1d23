"""The report builder's LLM method (`llm:<model>`): an executive summary and key points.

The instructions are fixed text here; everything from the request, the structure and the
articles goes to the model only as data in the user message (`model_calls.ask_json`):

```
{"title", "topic", "description", "structure_type", "target_audience",
 "max_summary_sentences",
 "sections": [{"title", "children": [<titles>]}],
 "articles": [{"title", "summary", "source", "published", "relevance", "sentiment_label"}]}
```

Bounded: the description is cut at 4,000 characters, each article summary at 1,000; at most
30 sections (12 child titles each) and the first 40 shown articles (most relevant first).

The reply must fit `summary_schema`: `{"summary": [1..n sentences], "key_points": [0..8]}`
with `n` = `max_summary_sentences`. After the schema, `read_summary` checks every text:
whitespace collapsed, non-empty, at most 600 characters per sentence and 300 per key point,
at least one letter or digit, and no control or bidirectional-override characters. A reply
that fails raises `StageFailedError` (the orchestrator retries the stage); nothing is
patched or replaced by the extractive summary. The texts are still untrusted: each renderer
escapes them.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import attrs

from ..._exceptions import StageFailedError
from ...llm.base import LLM
from ..model_calls import LLMTally, ask_json, check_reply, reply_text
from .content import Article, OutlineElement

__all__ = [
    "MAX_KEY_POINTS",
    "MAX_KEY_POINT_CHARS",
    "MAX_SENTENCE_CHARS",
    "ModelSummary",
    "SummaryRequest",
    "model_summary",
    "read_summary",
    "summary_schema",
]

MAX_KEY_POINTS = 8
MAX_SENTENCE_CHARS = 600
MAX_KEY_POINT_CHARS = 300
_PROMPT_DESCRIPTION = 4_000
_PROMPT_SUMMARY = 1_000
_PROMPT_ARTICLES = 40
_PROMPT_SECTIONS = 30
_PROMPT_CHILDREN = 12
_PROMPT_FIELD = 300
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_INSTRUCTIONS = (
    "You write the executive summary of a research report titled `data.title` on "
    "`data.topic`. Base it only on `data.description`, the report's `data.sections` and the "
    "classified news articles in `data.articles` (most relevant first). Answer with "
    "`summary`: at most `data.max_summary_sentences` complete, factual sentences of plain "
    "text (no Markdown, HTML, lists or headings), and `key_points`: up to 8 short plain-text "
    "takeaways a reader should remember. Do not invent facts, figures or sources."
)


@attrs.frozen
class ModelSummary:
    """A checked model reply: summary sentences and key points (plain, still untrusted)."""

    summary: tuple[str, ...]
    key_points: tuple[str, ...]


@attrs.frozen
class SummaryRequest:
    """What the model summarises (already checked by the report builder)."""

    title: str
    topic: str
    description: str
    structure_type: str
    audience: str
    outline: tuple[OutlineElement, ...]
    articles: tuple[Article, ...]
    max_sentences: int

    def data(self) -> dict[str, Any]:
        """The data block sent as the user message (bounded; see the module docstring)."""
        return {
            "title": self.title[:_PROMPT_FIELD],
            "topic": self.topic[:_PROMPT_FIELD],
            "description": self.description[:_PROMPT_DESCRIPTION],
            "structure_type": self.structure_type[:_PROMPT_FIELD],
            "target_audience": self.audience[:_PROMPT_FIELD],
            "max_summary_sentences": self.max_sentences,
            "sections": [
                {
                    "title": element.title[:_PROMPT_FIELD],
                    "children": [
                        child.title[:_PROMPT_FIELD] for child in element.children[:_PROMPT_CHILDREN]
                    ],
                }
                for element in self.outline[:_PROMPT_SECTIONS]
            ],
            "articles": [
                {
                    "title": article.title[:_PROMPT_FIELD],
                    "summary": article.summary[:_PROMPT_SUMMARY],
                    "source": article.source[:_PROMPT_FIELD],
                    "published": article.published[:_PROMPT_FIELD],
                    "relevance": article.relevance,
                    "sentiment_label": article.sentiment_label[:_PROMPT_FIELD],
                }
                for article in self.articles[:_PROMPT_ARTICLES]
            ],
        }

    def prompt_chars(self) -> int:
        """The length of the data block as sent, in characters (for estimates)."""
        return len(json.dumps(self.data(), ensure_ascii=False)) + len(_INSTRUCTIONS)


def summary_schema(max_sentences: int) -> dict[str, Any]:
    """The JSON schema of the model's reply for at most `max_sentences` sentences."""
    text = {"type": "string"}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["summary", "key_points"],
        "properties": {
            "summary": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_sentences,
                "items": text,
            },
            "key_points": {"type": "array", "maxItems": MAX_KEY_POINTS, "items": text},
        },
    }


def _plain(value: object, where: str, limit: int) -> str:
    text = reply_text(value, where, limit)
    if not any(c.isalnum() for c in text) or any(
        c in _BIDI_CONTROLS or unicodedata.category(c) in ("Cc", "Cs") for c in text
    ):
        raise StageFailedError(
            f"the model's reply at {where} is not plain text (no letters or digits, "
            "or control characters)",
            details={"path": where},
        )
    return text


def read_summary(data: Any, max_sentences: int) -> ModelSummary:
    """The checked summary in a model reply `data` (see the module docstring).

    Raises `StageFailedError` if `data` does not fit `summary_schema(max_sentences)` or a
    text is empty, overlong or not plain text.
    """
    check_reply(data, summary_schema(max_sentences), "report_summary")
    return ModelSummary(
        summary=tuple(
            _plain(s, f"/summary/{i}", MAX_SENTENCE_CHARS) for i, s in enumerate(data["summary"])
        ),
        key_points=tuple(
            _plain(p, f"/key_points/{i}", MAX_KEY_POINT_CHARS)
            for i, p in enumerate(data["key_points"])
        ),
    )


async def model_summary(llm: LLM, request: SummaryRequest, tally: LLMTally) -> ModelSummary:
    """Ask `llm` for the summary of `request`; the reply's usage and cost go into `tally`.

    Raises `StageFailedError` for a reply that fails its checks, and whatever the provider
    raises (`WorkerError`, `BadInputError`).
    """
    data = await ask_json(
        llm,
        instructions=_INSTRUCTIONS,
        data=request.data(),
        schema=summary_schema(request.max_sentences),
        schema_name="report_summary",
        tally=tally,
        max_tokens=200 + 80 * (request.max_sentences + MAX_KEY_POINTS),
    )
    return read_summary(data, request.max_sentences)
