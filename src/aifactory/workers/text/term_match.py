"""Matching words loosely: content words reduced to a simple singular form.

Used where a non-LLM method asks "does this text mention that term?" (the classifier's
relevance, the validator's coverage and audience checks). The reduction, in full: take the
content words of `aifactory.workers.text.keywords.content_words` (case-folded, no stopwords or bare
numbers), drop a trailing `'s`, then turn a final `ies` into `y` (`policies` → `policy`), drop a
final `es` after `s`, `x`, `z`, `ch` or `sh` (`taxes` → `tax`), and drop a final `s` that does
not follow `s`, `u` or `i` (`tools` → `tool`, but `glass`, `status` and `analysis` stay). Words
of three letters or fewer are kept as they are. It is deliberately crude and predictable: no
dictionary, the same result on every platform.
"""

from __future__ import annotations

from .keywords import content_words

__all__ = ["singular", "terms"]


def singular(word: str) -> str:
    """`word` (already case-folded) in the simple singular form described above."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The content words of `text` in reading order, each in its simple singular form."""
    return [singular(word) for word in content_words(text)]
