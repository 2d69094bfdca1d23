"""Lexicon sentiment: the content classifier's non-LLM sentiment, in full.

1. Cut the text into clauses at `. , ; : ! ? ( )` and dashes, and each clause into words
   (`aifactory.workers.text.keywords.tokenize`, case-folded, typographic apostrophes straight).
2. A word in `POSITIVE` counts +1, a word in `NEGATIVE` -1 (after the simple singular form of
   `aifactory.workers.text.term_match`, so "losses" is "loss").
3. **Negation**: a count flips sign when a negator (`NEGATORS`, or any word ending in `n't`)
   stands at most three words before it in the same clause ("not good" and "never really
   fails" flip; "not. Good" does not).
4. score = (positives - negatives) / (positives + negatives + 1), rounded to 4 decimals: in
   (-1, 1), 0 without sentiment words; the +1 keeps one word from making a text wholly
   positive or negative.
5. label: `positive` when score >= 0.25, `negative` when score <= -0.25, else `neutral`.

The lexicon is small and aimed at news about technology, business and markets. It is
deliberately simple: no intensifiers, no sarcasm. The LLM path exists for nuance.
"""

from __future__ import annotations

import re
from fractions import Fraction

from .keywords import fold, tokenize
from .term_match import singular

__all__ = ["NEGATIVE", "NEGATORS", "POSITIVE", "label", "sentiment_score"]

_POSITIVE_TEXT = """
    achieve achieved advance advantage approve approved benefit best better boost boosted
    breakthrough efficient excellent expand expanded gain gained good great grew grow growth
    improve improved improvement innovative innovation lead leading optimistic outperform
    outperformed positive praise praised profit profitable progress rallied rally recover
    recovered recovery reliable resilient rise rising robust rose safe save secure soar
    soared solid strong strength succeed succeeded success successful surge surged thrive
    top upgrade win won
"""
_NEGATIVE_TEXT = """
    abuse attack bad ban banned bankrupt bankruptcy breach bug collapse collapsed concern
    crash crashed crisis damage debt decline declined decrease delay delayed deficit
    downturn drop dropped fail failed failure fall fell fear flaw fraud hack hacked harm
    layoff lawsuit leak leaked lose losing loss lost negative outage penalty plunge plunged
    poor problem recall recession risk risky scandal shortage shutdown slow slump struggle
    struggled threat trouble unsafe vulnerability vulnerable warn warned warning weak worse
    worst
"""
_NEGATOR_TEXT = "not no never none nobody nothing neither nor without hardly barely cannot"
POSITIVE = frozenset(_POSITIVE_TEXT.split())
NEGATIVE = frozenset(_NEGATIVE_TEXT.split())
NEGATORS = frozenset(_NEGATOR_TEXT.split())
_WINDOW = 3
_CLAUSE = re.compile(r"[.,;:!?()\u2013\u2014]|\s-\s")
POSITIVE_AT = 0.25


def _is_negator(word: str) -> bool:
    return word in NEGATORS or word.endswith("n't")


def sentiment_score(text: str) -> float:
    """The lexicon sentiment of `text` in (-1, 1) (see module docstring); deterministic."""
    positive = negative = 0
    for clause in _CLAUSE.split(text):
        words = [fold(token) for token in tokenize(clause)]
        for index, word in enumerate(words):
            base = singular(word)
            polarity = (base in POSITIVE or word in POSITIVE) - (
                base in NEGATIVE or word in NEGATIVE
            )
            if not polarity:
                continue
            if any(_is_negator(w) for w in words[max(0, index - _WINDOW) : index]):
                polarity = -polarity
            if polarity > 0:
                positive += 1
            else:
                negative += 1
    score = Fraction(positive - negative, positive + negative + 1)
    return round(float(score), 4)


def label(score: float) -> str:
    """`positive` (score >= 0.25), `negative` (score <= -0.25) or `neutral`."""
    if score >= POSITIVE_AT:
        return "positive"
    if score <= -POSITIVE_AT:
        return "negative"
    return "neutral"
