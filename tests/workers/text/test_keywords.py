"""Keyword ranking: frequency first, ties alphabetical, stopwords and excluded words dropped."""

from __future__ import annotations

import pytest

from aifactory.workers.text.keywords import content_words, rank_keywords, tokenize


def test_ranks_by_frequency_then_alphabetically() -> None:
    text = "zebra apple mango. Mango zebra! apple? kiwi mango"
    # mango 3; apple and zebra tie at 2 (apple first); kiwi 1.
    assert rank_keywords(text, 10) == ["mango", "apple", "zebra", "kiwi"]
    assert rank_keywords(text, 2) == ["mango", "apple"]
    assert rank_keywords(text, 0) == []


def test_drops_stopwords_numbers_and_single_letters() -> None:
    text = "The cat and the dog: 2024 is a year; x marks it. Don\u2019t panic, don't."
    assert rank_keywords(text, 10) == ["cat", "dog", "marks", "panic", "year"]


def test_excluded_words_are_left_out_case_insensitively() -> None:
    assert rank_keywords("Python python typing Typing typing", 5, exclude=["PYTHON"]) == ["typing"]


def test_keeps_the_most_frequent_spelling_and_prefers_fewer_capitals_on_ties() -> None:
    assert rank_keywords("AI ai AI models", 2) == ["AI", "models"]
    # A sentence-initial capital ties with the plain spelling: the plain one wins.
    assert rank_keywords("Agents act. Then agents rest.", 1) == ["agents"]


def test_order_of_equal_counts_does_not_depend_on_input_order() -> None:
    assert rank_keywords("beta alpha gamma", 3) == rank_keywords("gamma beta alpha", 3)


def test_tokenize_keeps_joined_words_and_splits_underscores() -> None:
    assert tokenize("state-of-the-art snake_case it's caf\u0065\u0301") == [
        "state-of-the-art",
        "snake",
        "case",
        "it's",
        "caf\u00e9",
    ]
    assert content_words("The State of ART") == ["state", "art"]


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        rank_keywords("anything", -1)
