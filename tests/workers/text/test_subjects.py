"""Subject words and the related terms that name them."""

from __future__ import annotations

import pytest

from aifactory.workers.text.subjects import (
    FRAMING_WORDS,
    RELATED_TERMS,
    names_term,
    subject_terms,
)
from aifactory.workers.text.term_match import terms


def test_the_tables_are_written_in_terms_form() -> None:
    # A word not in `terms` form (a plural, a capital) could never match a text.
    assert {" ".join(terms(w)) for w in FRAMING_WORDS} == set(FRAMING_WORDS)
    for subject, related in RELATED_TERMS.items():
        assert terms(subject) == [subject]
        assert subject not in FRAMING_WORDS
        for phrase in related:
            assert " ".join(terms(phrase)) == phrase, (subject, phrase)


def test_the_subject_is_the_topic_without_its_framing_words() -> None:
    assert subject_terms(terms("Market analysis for AI tools")) == ["ai", "tool"]
    assert subject_terms(terms("Market research report")) == ["market", "research", "report"]
    assert subject_terms(["ai", "ai", "tool"]) == ["ai", "tool"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("Open-weight models narrow the gap", True),
        ("Pricing of LLM APIs falls", True),
        ("Advances in machine learning", True),
        ("A learning machine for knitting", False),  # a phrase is its words in order
        ("AI tools market grows", True),
        ("Weekend farmers' market returns to the town square", False),
    ],
)
def test_a_text_names_a_subject_by_its_word_or_a_related_term(text: str, named: bool) -> None:
    assert names_term("ai", terms(text)) is named


def test_related_terms_go_one_way() -> None:
    assert names_term("ai", terms("fashion models")) is True
    assert names_term("model", terms("AI tools")) is False
