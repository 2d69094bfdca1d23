"""Deterministic keyword ranking: the non-LLM way to find what a text is about.

Used by the content granulator (supplied material becomes sub-topic titles) and by the report
builder's extractive summariser (word frequencies score sentences). Everything here is pure:
the same text always gives the same words in the same order, on every platform.

The method, in full:

1. Normalise the text to Unicode NFC, so composed and decomposed accents count as one word.
2. Tokenise into words: runs of letters and digits, which may be joined by an apostrophe or a
   hyphen (`don't`, `state-of-the-art`). Underscores and other punctuation split words.
3. Fold case (`str.casefold`, and typographic apostrophes to `'`) to count; drop English
   stopwords, words shorter than two characters, and words made only of digits.
4. Rank by frequency, highest first; ties are broken alphabetically on the folded word.
5. Show each word in its most frequent spelling, so `AI` stays `AI` and `Python` stays
   `Python`; ties go to the spelling with fewer capitals, then to the alphabetically first.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

__all__ = [
    "STOPWORDS",
    "content_words",
    "fold",
    "is_content_word",
    "preferred_spelling",
    "rank_keywords",
    "tokenize",
]

# Apostrophes (straight or typographic U+2019) and hyphens join word parts.
_WORD = re.compile("[^\\W_]+(?:['\u2019\\-][^\\W_]+)*")

_STOPWORD_TEXT = """
    a about above across after again against all almost also although always am among an and
    another any anyone anything are around as at be became because become been before being
    below between both but by can cannot could did do does doing done down during each either
    else enough etc even ever every few for from further get gets getting given got had has
    have having he her here hers herself him himself his how however i if in into is it it's
    its itself just least less let like made make makes many may me might more most much must
    my myself near need neither never no nor not now of off often on once one only onto or
    other others otherwise our ours ourselves out over own per perhaps quite rather really
    same several shall she should since so some something such than that that's the their
    theirs them themselves then there there's these they this those though through thus to
    too toward towards under unless until up upon us use used uses using very via was we well
    were what when where whether which while who whom whose why will with within without
    would yet you your yours yourself yourselves
    aren't can't couldn't didn't doesn't don't i'm i've isn't let's shouldn't they're they've
    wasn't we're we've weren't won't wouldn't you're you've
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())


def tokenize(text: str) -> list[str]:
    """The words of `text` in reading order, as written (case and stopwords kept)."""
    return _WORD.findall(unicodedata.normalize("NFC", text))


def fold(token: str) -> str:
    """`token` case-folded, with typographic apostrophes made straight (how words compare)."""
    # One apostrophe, so typographic (U+2019) and straight ones give the same (stop)word.
    return token.casefold().replace("\u2019", "'")


def is_content_word(folded: str) -> bool:
    """Whether the folded word carries meaning: two characters or more, not a stopword, not
    only digits.
    """
    return len(folded) >= 2 and not folded.isdigit() and folded not in STOPWORDS


def content_words(text: str) -> list[str]:
    """The case-folded words of `text` that carry meaning (no stopwords, no bare numbers)."""
    return [w for w in (fold(t) for t in tokenize(text)) if is_content_word(w)]


def rank_keywords(text: str, limit: int, *, exclude: Iterable[str] = ()) -> list[str]:
    """The `limit` most frequent content words of `text`, best first.

    Ties in frequency are broken alphabetically (on the case-folded word), so the ranking
    never depends on dictionary order. Words in `exclude` (compared case-folded, e.g. the
    words of the topic itself) are left out. Each word is returned in its most frequent
    spelling. Raises `ValueError` if `limit` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must be zero or more, not {limit}")
    excluded = {fold(word) for word in exclude}
    counts: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = {}
    for token in tokenize(text):
        folded = fold(token)
        if not is_content_word(folded) or folded in excluded:
            continue
        counts[folded] += 1
        spellings.setdefault(folded, Counter())[token] += 1
    ranked = sorted(counts, key=lambda word: (-counts[word], word))[:limit]
    return [preferred_spelling(spellings[word]) for word in ranked]


def preferred_spelling(seen: Counter[str]) -> str:
    """The spelling to show for a word seen written as `seen` (spelling -> count)."""
    # Capitals at the start of sentences inflate capitalised spellings, so a tie goes to the
    # spelling with fewer capitals; then alphabetical, so it never depends on input order.
    return min(seen, key=lambda s: (-seen[s], sum(c.isupper() for c in s), s))
