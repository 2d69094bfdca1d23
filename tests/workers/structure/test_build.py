"""Structure templates: well-formed trees, granularity, material, determinism, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aifactory._exceptions import BadInputError
from aifactory.protocol.codec import dumps
from aifactory.workers.structure.build import (
    METHOD,
    STRUCTURE_TYPES,
    build_structure,
    check_topic,
    expected_element_count,
    structure_quality,
)

ELEMENT_KEYS = {"type", "title", "description", "order", "children"}
MATERIAL = (
    "Gradient descent minimises a loss. Neural networks learn by gradient descent; "
    "regularisation keeps neural networks from overfitting. Gradient checks help."
)


def walk(elements: list[dict[str, Any]], depth: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
    for element in elements:
        yield depth, element
        yield from walk(element["children"], depth + 1)


def check_siblings(elements: list[dict[str, Any]]) -> None:
    assert [e["order"] for e in elements] == list(range(1, len(elements) + 1))
    titles = [e["title"] for e in elements]
    assert len(set(titles)) == len(titles), titles
    for element in elements:
        assert set(element) == ELEMENT_KEYS
        assert isinstance(element["type"], str)
        assert element["type"]
        assert isinstance(element["title"], str)
        assert element["title"].strip()
        assert isinstance(element["description"], str)
        assert element["description"].strip()
        assert isinstance(element["children"], list)
        check_siblings(element["children"])


def test_there_are_seven_structure_types() -> None:
    assert set(STRUCTURE_TYPES) == {
        "course",
        "quiz",
        "novel",
        "workflow",
        "knowledge_map",
        "learning_path",
        "research_report",
    }


@pytest.mark.parametrize("structure_type", STRUCTURE_TYPES)
@pytest.mark.parametrize("granularity", [1, 3, 5])
@pytest.mark.parametrize("material", ["", MATERIAL])
def test_every_type_and_granularity_gives_a_well_formed_tree(
    structure_type: str, granularity: int, material: str
) -> None:
    tree = build_structure(structure_type, "Machine learning", granularity, "novice", material)
    assert tree["structure_type"] == structure_type
    assert tree["topic"] == "Machine learning"
    assert tree["target_audience"] == "novice"
    assert tree["granularity"] == granularity
    assert tree["method"] == METHOD
    assert "Machine learning" in tree["title"]
    assert tree["elements"]
    check_siblings(tree["elements"])
    nodes = list(walk(tree["elements"]))
    assert (
        tree["element_count"] == len(nodes) == expected_element_count(structure_type, granularity)
    )
    assert tree["depth"] == max(depth for depth, _ in nodes)
    assert structure_quality(tree) == 100.0


@pytest.mark.parametrize("structure_type", STRUCTURE_TYPES)
def test_depth_and_size_grow_with_granularity(structure_type: str) -> None:
    trees = [build_structure(structure_type, "Cities", g) for g in range(1, 6)]
    depths = [tree["depth"] for tree in trees]
    assert depths == [2, 2, 3, 3, 4]
    counts = [tree["element_count"] for tree in trees]
    assert counts == sorted(set(counts)), counts  # strictly increasing


def test_fixed_levels_keep_their_shape() -> None:
    novel = build_structure("novel", "A lighthouse keeper", 1)
    assert [act["title"] for act in novel["elements"]] == [
        "Act I: setup",
        "Act II: confrontation",
        "Act III: resolution",
    ]
    report = build_structure("research_report", "AI tools market", 3)
    sections = report["elements"]
    assert [s["title"] for s in sections] == [
        "Executive summary",
        "Background",
        "Findings",
        "Methodology",
        "Recommendations",
        "Sources",
    ]
    assert [bool(s["children"]) for s in sections] == [False, False, True, False, False, False]
    quiz = build_structure("quiz", "Fractions", 5)
    question = quiz["elements"][0]["children"][0]
    assert [c["type"] for c in question["children"]] == ["option"] * 4 + ["answer"]
    assert [bool(c["children"]) for c in question["children"]] == [False] * 4 + [True]
    assert question["children"][4]["children"][0]["type"] == "explanation"


def test_titles_are_phrased_from_the_topic() -> None:
    tree = build_structure("course", "Sourdough baking", 1)
    assert [m["title"] for m in tree["elements"]] == [
        "Foundations of Sourdough baking",
        "Core concepts of Sourdough baking",
        "Methods and tools for Sourdough baking",
    ]
    assert tree["keywords"] == []


def test_source_material_becomes_sub_topic_titles() -> None:
    plain = build_structure("course", "Machine learning", 3)
    fed = build_structure("course", "Machine learning", 3, material=MATERIAL)
    # The repeated two-word phrases ("gradient descent" and "neural networks", twice each,
    # earliest first; "Gradient" keeps its more frequent capital). Once phrases are found,
    # single words must occur twice and not be part of a phrase: none is left, so the
    # template's own subjects fill the other modules. The topic's words are left out.
    assert fed["keywords"] == ["Gradient descent", "neural networks"]
    assert [m["title"] for m in fed["elements"]] == [
        "Gradient descent",
        "Neural networks",
        "Methods and tools for Machine learning",
        "Applying Machine learning",
        "Case studies in Machine learning",
    ]
    assert fed["elements"][0]["children"][0]["title"] == "Introduction to Gradient descent"
    assert dumps(plain) != dumps(fed)


def test_material_fills_keyword_places_across_fixed_parents() -> None:
    tree = build_structure("novel", "A heist", 1, material="vault vault guard guard alarm")
    chapters = [[c["title"] for c in act["children"]] for act in tree["elements"]]
    # Three chapters per act at granularity 1; keywords first, then the template's subjects.
    assert chapters == [
        ["Guard", "Vault", "Alarm"],
        ["Opening moves", "Complications", "Rising stakes"],
        ["Opening moves", "Complications", "Rising stakes"],
    ]


def test_material_as_list_equals_material_as_lines() -> None:
    parts = ["alpha beta", "beta gamma"]
    assert build_structure("workflow", "Ops", 2, material=parts) == build_structure(
        "workflow", "Ops", 2, material="alpha beta\nbeta gamma"
    )


def test_same_inputs_give_byte_identical_json() -> None:
    first = dumps(build_structure("learning_path", "Rust", 5, "engineers", [MATERIAL]))
    second = dumps(build_structure("learning_path", "Rust", 5, "engineers", [MATERIAL]))
    assert first == second


def test_topic_whitespace_is_collapsed() -> None:
    assert build_structure("quiz", "  Fractions \n and  decimals ", 1)["topic"] == (
        "Fractions and decimals"
    )


@pytest.mark.parametrize("topic", ["", "   ", None, 42, "x" * 501])
def test_bad_topics_are_refused(topic: object) -> None:
    with pytest.raises(BadInputError, match="topic"):
        check_topic(topic)
    with pytest.raises(BadInputError, match="topic"):
        build_structure("course", topic, 3)  # type: ignore[arg-type]


def test_a_topic_of_500_characters_is_accepted() -> None:
    assert check_topic("x" * 500) == "x" * 500


@pytest.mark.parametrize("structure_type", ["essay", "Course", "", None])
def test_unknown_structure_types_are_refused(structure_type: object) -> None:
    with pytest.raises(BadInputError, match="structure type") as caught:
        build_structure(structure_type, "Topic", 3)  # type: ignore[arg-type]
    assert "course" in caught.value.details["known"]


@pytest.mark.parametrize("granularity", [0, 6, -1, "3", 2.5, True, None])
def test_granularity_out_of_range_is_refused(granularity: object) -> None:
    with pytest.raises(BadInputError, match="granularity"):
        build_structure("course", "Topic", granularity)  # type: ignore[arg-type]


def test_quality_drops_when_levels_or_texts_are_missing() -> None:
    tree = build_structure("course", "Chess", 3)
    shallow = {**tree, "elements": [{**e, "children": []} for e in tree["elements"]]}
    # Depth 1 of 3 and 5 of 65 elements filled: 50 * 1/3 + 50 * 5/65.
    assert structure_quality(shallow) == round(50 / 3 + 50 * 5 / 65, 1)
    blank = {**tree, "elements": [{**e, "description": " "} for e in tree["elements"]]}
    assert structure_quality(blank) == round(50 + 50 * 60 / 65, 1)
    assert structure_quality({**tree, "elements": "junk"}) == 0.0
    with pytest.raises(BadInputError):
        structure_quality({**tree, "granularity": 9})
