"""Extractive summary: sentence splitting, scores, selection in original order."""

from __future__ import annotations

from fractions import Fraction

import pytest

from aifactory.workers.text.summarize import extractive_summary, score_sentences, split_sentences


def test_split_sentences_on_stops_and_blank_lines() -> None:
    text = 'First one here. He said "stop." Then  he\nleft! Is it?\n\nNo stop at the end'
    assert split_sentences(text) == [
        "First one here.",
        'He said "stop."',
        "Then he left!",
        "Is it?",
        "No stop at the end",
    ]


def test_scores_are_mean_word_weights() -> None:
    sentences = ["Cats chase mice.", "Cats sleep.", "Dogs chase cats."]
    # cats 3, chase 2, mice 1, sleep 1, dogs 1; weights are count / 3.
    assert score_sentences(sentences) == [
        Fraction(3 + 2 + 1, 3 * 3),
        Fraction(3 + 1, 3 * 2),
        Fraction(1 + 2 + 3, 3 * 3),
    ]
    assert score_sentences(["the and of it"]) == [Fraction(0)]


def test_keeps_the_best_sentences_in_their_original_order() -> None:
    texts = [
        "Engineers tested fuel pumps and rockets yesterday.",
        "The weather was mild on Tuesday.",
        "Rockets reach orbit.",
        "Rockets rockets rockets launch.",
    ]
    scores = score_sentences([s for t in texts for s in split_sentences(t)])
    # The last sentence scores highest, the third next, and both beat the first two.
    assert scores[3] > scores[2] > max(scores[0], scores[1])
    assert extractive_summary(texts, 2) == [
        "Rockets reach orbit.",
        "Rockets rockets rockets launch.",
    ]
    assert extractive_summary(texts, 1) == ["Rockets rockets rockets launch."]


def test_ties_go_to_the_earlier_sentence() -> None:
    texts = ["Apples grow on trees.", "Pears grow on trees."]
    assert extractive_summary(texts, 1) == ["Apples grow on trees."]


def test_repeats_and_fragments_are_left_out() -> None:
    texts = ["Solar panels convert light.", "solar  panels convert light.", "Solar power.", "Ok"]
    assert extractive_summary(texts, 5) == ["Solar panels convert light."]


def test_nothing_to_summarise_gives_nothing() -> None:
    assert extractive_summary([], 3) == []
    assert extractive_summary(["", "   "], 3) == []
    assert extractive_summary(["A whole sentence here."], 0) == []


def test_negative_sentence_count_is_refused() -> None:
    with pytest.raises(ValueError, match="max_sentences"):
        extractive_summary(["x y z."], -1)


def test_summary_is_deterministic() -> None:
    texts = [f"Topic {i} covers markets and risk {i % 3}." for i in range(40)]
    assert extractive_summary(texts, 5) == extractive_summary(list(texts), 5)
