"""Structure building: the granulator's non-LLM method, `non-llm:structure-template`.

The per-type templates (course, quiz, novel, workflow, knowledge_map, learning_path,
research_report) are in `aifactory.workers.structure.templates`; this module fills them from a
topic, an audience, a granularity and optional material, and grades the result.

Levels marked * in the templates take their subjects from the supplied material: its salient
phrases (see `aifactory.workers.text.phrases`: the items it enumerates, then multi-word phrases it
repeats, then frequent single words), leaving out phrases made only of the topic's or the
target audience's words, become the sub-topic titles in rank order, and the template's
default subjects fill any places left over. So supplying material changes the structure, and
without material the topic alone phrases it. A course on "Sourdough baking" for "home
bakers" whose material says "master starters, hydration, shaping, scoring and baking" gets
the modules Starters, Hydration, Shaping, Scoring, and never "Home" or "Bakers"
("baking" is a topic word).

Granularity (1-5) decides depth and breadth, always the same way:

| granularity | 1 | 2 | 3 | 4 | 5 |
|---|---|---|---|---|---|
| levels | 2 | 2 | 3 | 3 | 4 |
| children per parent, 1st-4th variable level | 3,2,2,2 | 4,3,2,2 | 5,3,3,2 | 6,4,3,2 | 7,4,3,2 |

Fixed levels (the three acts, the report's sections, the knowledge map's core, a quiz
question's options) keep their size at every granularity and are not counted as variable
levels: a knowledge map's concepts are its first variable level, as a course's modules are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..._exceptions import BadInputError
from ..text.keywords import tokenize
from ..text.phrases import salient_phrases
from .templates import TEMPLATES, LevelTemplate, StructureTemplate

__all__ = [
    "MAX_GRANULARITY",
    "MAX_TOPIC_LENGTH",
    "METHOD",
    "MIN_GRANULARITY",
    "STRUCTURE_TYPES",
    "build_structure",
    "check_granularity",
    "check_structure_type",
    "check_topic",
    "expected_depth",
    "expected_element_count",
    "level_sizes",
    "structure_quality",
]

METHOD = "non-llm:structure-template"
MIN_GRANULARITY = 1
MAX_GRANULARITY = 5
MAX_TOPIC_LENGTH = 500
_DEPTH = {1: 2, 2: 2, 3: 3, 4: 3, 5: 4}
_BREADTH = {1: (3, 2, 2, 2), 2: (4, 3, 2, 2), 3: (5, 3, 3, 2), 4: (6, 4, 3, 2), 5: (7, 4, 3, 2)}
_KEYWORD_LIMIT = 64  # more than any tree has keyword places (at most 3 acts x 7 chapters)


STRUCTURE_TYPES: tuple[str, ...] = tuple(TEMPLATES)


def check_structure_type(structure_type: object) -> str:
    """Return `structure_type` if a template exists for it. Raises `BadInputError`."""
    if not isinstance(structure_type, str) or structure_type not in TEMPLATES:
        raise BadInputError(
            f"unknown structure type {structure_type!r}",
            details={"structure_type": repr(structure_type)[:80], "known": list(TEMPLATES)},
        )
    return structure_type


def check_granularity(granularity: object) -> int:
    """Return `granularity` if it is an integer from 1 to 5. Raises `BadInputError`."""
    if (
        isinstance(granularity, bool)
        or not isinstance(granularity, int)
        or not MIN_GRANULARITY <= granularity <= MAX_GRANULARITY
    ):
        raise BadInputError(
            f"granularity must be an integer from {MIN_GRANULARITY} to {MAX_GRANULARITY}",
            details={"granularity": repr(granularity)[:80]},
        )
    return granularity


def check_topic(topic: object) -> str:
    """Return `topic` with its whitespace collapsed, if it is a non-empty string of at most
    500 characters. Raises `BadInputError`.
    """
    if not isinstance(topic, str) or not topic.strip():
        raise BadInputError("topic is required: a non-empty string", details={"field": "topic"})
    topic = " ".join(topic.split())
    if len(topic) > MAX_TOPIC_LENGTH:
        raise BadInputError(
            f"topic is longer than {MAX_TOPIC_LENGTH} characters",
            details={"field": "topic", "length": len(topic), "limit": MAX_TOPIC_LENGTH},
        )
    return topic


def _sizes(template: StructureTemplate, granularity: int) -> tuple[int, ...]:
    """Elements per parent on each level used at `granularity` (fixed levels keep their size)."""
    sizes: list[int] = []
    variable = iter(_BREADTH[granularity])
    for spec in template.levels[: _DEPTH[granularity]]:
        sizes.append(len(spec.subjects) if spec.fixed else next(variable))
    return tuple(sizes)


def expected_depth(granularity: int) -> int:
    """How many levels a template tree has at `granularity` (1-5). Raises `BadInputError`."""
    return _DEPTH[check_granularity(granularity)]


def level_sizes(structure_type: str, granularity: int) -> tuple[int, ...]:
    """Elements per parent on each level of the template tree (fixed levels keep their size).

    Raises `BadInputError` for an unknown type or a granularity outside 1-5.
    """
    return _sizes(TEMPLATES[check_structure_type(structure_type)], check_granularity(granularity))


def _sentence_case(text: str) -> str:
    # Only the first character: keywords such as "AI" or "iPhone" keep their own spelling.
    return text[:1].upper() + text[1:]


@attrs.define
class _Builder:
    """Walks a template depth-first; `next_keyword` is the only state, so order is fixed."""

    template: StructureTemplate
    topic: str
    audience: str
    sizes: tuple[int, ...]
    keywords: list[str]
    next_keyword: int = 0

    def children(self, level: int, parent: str) -> list[dict[str, Any]]:
        if level >= len(self.sizes):
            return []
        spec = self.template.levels[level]
        elements = []
        for index in range(self.sizes[level]):
            subject = self._subject(spec, index, parent)
            fields = {"topic": self.topic, "audience": self.audience, "n": index + 1}
            title = _sentence_case(spec.title.format(subject=subject, parent=parent, **fields))
            description = spec.description.format(
                subject=subject, parent=parent, title=title, **fields
            )
            grows = not spec.expand or index in spec.expand
            elements.append(
                {
                    "type": spec.types[index % len(spec.types)],
                    "title": title,
                    "description": _sentence_case(description),
                    "order": index + 1,
                    "children": self.children(level + 1, subject) if grows else [],
                }
            )
        return elements

    def _subject(self, spec: LevelTemplate, index: int, parent: str) -> str:
        if spec.from_keywords and self.next_keyword < len(self.keywords):
            self.next_keyword += 1
            return self.keywords[self.next_keyword - 1]
        pattern = spec.subjects[index % len(spec.subjects)]
        return pattern.format(topic=self.topic, parent=parent, audience=self.audience)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _count_and_depth(elements: object, level: int = 1) -> tuple[int, int, int]:
    """(elements, elements with a title and description, depth) of a tree, tolerating junk."""
    if not isinstance(elements, list) or not elements:
        return 0, 0, level - 1
    total = filled = 0
    depth = level
    for element in elements:
        if not isinstance(element, Mapping):
            continue
        total += 1
        if all(_is_text(element.get(field)) for field in ("title", "description")):
            filled += 1
        sub_total, sub_filled, sub_depth = _count_and_depth(element.get("children"), level + 1)
        total, filled, depth = total + sub_total, filled + sub_filled, max(depth, sub_depth)
    return total, filled, depth


def expected_element_count(structure_type: str, granularity: int) -> int:
    """How many elements the template builds for `structure_type` at `granularity`.

    Raises `BadInputError` for an unknown type or a granularity outside 1-5.
    """
    template = TEMPLATES[check_structure_type(structure_type)]
    sizes = _sizes(template, check_granularity(granularity))

    def count(level: int) -> int:
        if level >= len(sizes):
            return 0
        spec, n = template.levels[level], sizes[level]
        growing = len([i for i in spec.expand if i < n]) if spec.expand else n
        return n + growing * count(level + 1)

    return count(0)


def build_structure(
    structure_type: str,
    topic: str,
    granularity: int,
    audience: str = "general",
    material: str | Sequence[str] = "",
) -> dict[str, Any]:
    """Build the typed structure tree for `topic` from the template of `structure_type`.

    `material` (text or texts: a description, source material) supplies sub-topic titles
    through its salient phrases (words of the topic and of `audience` excluded). Pure and
    deterministic: the same arguments give an equal tree, and so byte-identical JSON. The
    result is
    `{"structure_type", "topic", "target_audience", "granularity", "title", "keywords",
    "elements", "element_count", "depth", "method"}`, each element being
    `{"type", "title", "description", "order", "children"}` with orders 1..n among siblings.

    Raises `BadInputError` for an unknown structure type, a granularity outside 1-5, or an
    empty or overlong topic (see `check_topic`).
    """
    template = TEMPLATES[check_structure_type(structure_type)]
    granularity = check_granularity(granularity)
    topic = check_topic(topic)
    text = material if isinstance(material, str) else "\n".join(material)
    excluded = [*tokenize(topic), *tokenize(audience)]
    keywords = salient_phrases(text, _KEYWORD_LIMIT, exclude=excluded)
    builder = _Builder(template, topic, audience, _sizes(template, granularity), keywords)
    elements = builder.children(0, topic)
    count, _, depth = _count_and_depth(elements)
    return {
        "structure_type": structure_type,
        "topic": topic,
        "target_audience": audience,
        "granularity": granularity,
        "title": f"{template.label}: {topic}",
        "keywords": keywords[: builder.next_keyword],
        "elements": elements,
        "element_count": count,
        "depth": depth,
        "method": METHOD,
    }


def structure_quality(structure: Mapping[str, Any]) -> float:
    """Structural completeness of a structure tree, 0-100 (one decimal).

    Half the score is depth reached against the template's target depth for the tree's
    granularity; half is elements with a non-empty title and description against the
    template's element count, each ratio capped at 1. It measures shape, not content, so it
    can also grade trees made by other methods (an LLM) against the same targets.

    Raises `BadInputError` if the tree's `structure_type` or `granularity` is invalid.
    """
    structure_type = check_structure_type(structure.get("structure_type"))
    granularity = check_granularity(structure.get("granularity"))
    _, filled, depth = _count_and_depth(structure.get("elements"))
    target = expected_element_count(structure_type, granularity)
    depth_ratio = min(depth / _DEPTH[granularity], 1.0)
    filled_ratio = min(filled / target, 1.0)
    return round(50 * depth_ratio + 50 * filled_ratio, 1)
