"""Extractive summary: the report builder's non-LLM method, `non-llm:extractive-summary`.

The method, in full:

1. Split each text into sentences: a sentence ends at `.`, `!` or `?` (optionally followed
   by a closing quote or bracket) before whitespace, or at a blank line. Single line breaks
   are spaces. Abbreviations such as "e.g." may split a sentence; that is accepted.
2. Drop repeated sentences (compared case-folded, whitespace collapsed), keeping the first,
   and sentences of fewer than three words or with no content word.
3. Count content words (see `aifactory.workers.text.keywords`) over the remaining sentences; each
   word's weight is its count divided by the highest count.
4. A sentence's score is the mean weight of its content words, computed exactly (fractions),
   so no floating-point rounding can reorder equal scores.
5. Keep the `max_sentences` best (ties: the earlier sentence), then restore reading order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from fractions import Fraction

from .keywords import content_words, tokenize

__all__ = ["METHOD", "extractive_summary", "score_sentences", "split_sentences"]

METHOD = "non-llm:extractive-summary"
_MIN_WORDS = 3
_PARAGRAPH = re.compile(r"\n\s*\n")
# Fixed-width look-behinds (one for a bare stop, one for a stop and a closing mark).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace collapsed, in reading order."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        flat = " ".join(paragraph.split())
        sentences.extend(part for part in _SENTENCE_END.split(flat) if part)
    return sentences


def _candidates(texts: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    kept: list[str] = []
    for text in texts:
        for sentence in split_sentences(text):
            key = sentence.casefold()
            if key in seen or len(tokenize(sentence)) < _MIN_WORDS:
                continue
            seen.add(key)
            if content_words(sentence):
                kept.append(sentence)
    return kept


def score_sentences(sentences: Sequence[str]) -> list[Fraction]:
    """Each sentence's score: the mean frequency weight of its content words (0 to 1).

    Word weights are counts over all `sentences` divided by the highest count; a sentence
    without content words scores 0.
    """
    words = [content_words(sentence) for sentence in sentences]
    counts = Counter(word for sentence_words in words for word in sentence_words)
    top = max(counts.values(), default=1)
    return [
        Fraction(sum(counts[w] for w in sentence_words), top * len(sentence_words))
        if sentence_words
        else Fraction(0)
        for sentence_words in words
    ]


def extractive_summary(texts: Iterable[str], max_sentences: int) -> list[str]:
    """The `max_sentences` highest-scoring sentences of `texts`, in their original order.

    Deterministic: equal inputs give equal summaries. Raises `ValueError` if `max_sentences`
    is negative.
    """
    if max_sentences < 0:
        raise ValueError(f"max_sentences must be zero or more, not {max_sentences}")
    sentences = _candidates(texts)
    scores = score_sentences(sentences)
    best = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:max_sentences]
    return [sentences[i] for i in sorted(best)]
