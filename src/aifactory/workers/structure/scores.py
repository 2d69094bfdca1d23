"""Structural heuristics: the validator's non-LLM method, `non-llm:structure-heuristics`.

Each aspect the validator asks about gets a 0-100 score (one decimal) computed from the
tree's shape and words alone; words are compared as `aifactory.workers.text.term_match.terms`
(content words, simple singular). The heuristics, in full:

- **coverage**: half for the topic's words found in the structure — a word found in an element
  title counts 1, one found only in descriptions ½ (the tree's own title, which merely repeats
  the topic, does not count) — and half for top-level elements whose title adds a word of
  its own (not a topic word, not in an earlier top-level title). A topic without content
  words counts as fully found.
- **completeness**: half for the depth reached against the expected depth, half for elements
  with a non-empty title and description against the expected element count, each ratio
  capped at 1. For a known structure type and granularity the expectations are the
  template's (`aifactory.workers.structure.build`, so this equals `structure_quality`); otherwise
  two levels and the tree's own element count.
- **flow**: the mean of three shares over the sibling groups (the top level and every
  non-empty `children` list): groups whose `order` runs 1..n in list order; groups without a
  repeated title; and balance — among the siblings that have children, fewest ÷ most
  children (1 when fewer than two siblings have children).
- **audience**: 40 for declaring the requested audience (the tree's `target_audience` has the
  same words as the requested one), 60 x the share of top-level descriptions that name it
  (any of its words). An audience without content words ("all") counts as named.

They measure form, not meaning: a structure can score well and still be poor content. That is
what the LLM path is for.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import attrs

from ..text.term_match import terms
from .build import STRUCTURE_TYPES, expected_depth, expected_element_count
from .tree import StructureTree, TreeNode

__all__ = ["ASPECTS", "AspectScore", "audience_score", "completeness", "coverage", "flow"]

ASPECTS = ("coverage", "completeness", "flow", "audience")
_DEFAULT_DEPTH = 2


@attrs.frozen
class AspectScore:
    """One aspect's score (0-100, one decimal) and feedback saying how it was reached."""

    aspect: str
    score: float
    feedback: str


def _percent(share: Fraction) -> float:
    return round(float(share * 100), 1)


def _groups(tree: StructureTree) -> Iterator[tuple[TreeNode, ...]]:
    if tree.elements:
        yield tree.elements
    for node in tree.walk():
        if node.children:
            yield node.children


def coverage(tree: StructureTree, topic: str) -> AspectScore:
    """How far the titles cover the topic and name distinct subjects (see module docstring)."""
    topic_terms = list(dict.fromkeys(terms(topic)))
    in_titles: set[str] = set()
    in_descriptions: set[str] = set()
    for node in tree.walk():
        in_titles.update(terms(node.title))
        in_descriptions.update(terms(node.description))
    titled = [t for t in topic_terms if t in in_titles]
    described = [t for t in topic_terms if t not in in_titles and t in in_descriptions]
    found = (
        Fraction(2 * len(titled) + len(described), 2 * len(topic_terms))
        if topic_terms
        else Fraction(1)
    )
    seen = set(topic_terms)
    distinct = 0
    for node in tree.elements:
        words = set(terms(node.title))
        distinct += bool(words - seen)
        seen |= words
    top = len(tree.elements)
    distinct_share = Fraction(distinct, top) if top else Fraction(0)
    missing = [t for t in topic_terms if t not in in_titles and t not in in_descriptions]
    feedback = (
        f"{len(titled)} of {len(topic_terms)} topic words appear in element titles and "
        f"{len(described)} more only in descriptions; {distinct} of {top} top-level elements "
        "name a subject of their own."
    )
    if missing:
        feedback += f" Not covered: {', '.join(missing)}."
    return AspectScore("coverage", _percent(found / 2 + distinct_share / 2), feedback)


def completeness(tree: StructureTree, structure_type: str, granularity: int | None) -> AspectScore:
    """Depth and filled elements against what is expected (see module docstring)."""
    nodes = list(tree.walk())
    filled = sum(1 for node in nodes if node.title and node.description)
    depth = tree.depth
    if structure_type in STRUCTURE_TYPES and granularity is not None and 1 <= granularity <= 5:
        target_depth = expected_depth(granularity)
        target_count = expected_element_count(structure_type, granularity)
    else:
        target_depth, target_count = _DEFAULT_DEPTH, max(len(nodes), 1)
    depth_share = min(Fraction(depth, target_depth), Fraction(1))
    filled_share = min(Fraction(filled, target_count), Fraction(1))
    feedback = (
        f"{filled} of {len(nodes)} elements have a title and a description (about "
        f"{target_count} expected); the structure is {depth} of {target_depth} expected "
        "levels deep."
    )
    return AspectScore("completeness", _percent(depth_share / 2 + filled_share / 2), feedback)


def flow(tree: StructureTree) -> AspectScore:
    """Ordering, unique sibling titles and sibling balance (see module docstring)."""
    groups = list(_groups(tree))
    if not groups:
        return AspectScore("flow", 0.0, "The structure has no elements to order.")
    ordered = unique = 0
    balance = Fraction(0)
    for group in groups:
        ordered += [node.order for node in group] == list(range(1, len(group) + 1))
        titles = [node.title.casefold() for node in group if node.title]
        unique += len(set(titles)) == len(titles)
        sizes = [len(node.children) for node in group if node.children]
        balance += Fraction(min(sizes), max(sizes)) if len(sizes) >= 2 else Fraction(1)
    n = len(groups)
    share = (Fraction(ordered, n) + Fraction(unique, n) + balance / n) / 3
    feedback = (
        f"{ordered} of {n} sibling groups are numbered 1..n in reading order; {unique} of {n} "
        f"have no repeated title; sibling balance {float(balance / n):.2f}."
    )
    return AspectScore("flow", _percent(share), feedback)


def audience_score(tree: StructureTree, audience: str) -> AspectScore:
    """Whether the structure declares and addresses `audience` (see module docstring)."""
    wanted = set(terms(audience))
    declared = bool(tree.target_audience) and set(terms(tree.target_audience)) == wanted
    top = tree.elements
    named = sum(1 for node in top if not wanted or wanted & set(terms(node.description)))
    named_share = Fraction(named, len(top)) if top else Fraction(0)
    share = Fraction(2, 5) * declared + Fraction(3, 5) * named_share
    state = "declares" if declared else "does not declare"
    feedback = (
        f"The structure {state} the requested audience; {named} of {len(top)} top-level "
        "descriptions address it."
    )
    return AspectScore("audience", _percent(share), feedback)
