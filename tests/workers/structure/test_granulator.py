"""`ContentGranulator` as a worker: checks, estimate, progress, output and summary."""

from __future__ import annotations

from typing import Any

import pytest

from aifactory._exceptions import BadInputError
from aifactory.models import Usage
from aifactory.protocol.codec import dumps
from aifactory.workers.structure.build import STRUCTURE_TYPES, build_structure
from aifactory.workers.structure.granulator import ContentGranulator

from ..conftest import ArtifactShelf

MATERIAL = "Kubernetes schedules containers. Containers share a kernel; Kubernetes scales them."


def test_declares_its_name_action_and_structure_types() -> None:
    worker = ContentGranulator()
    assert worker.name == "content_granulator"
    assert worker.info.actions == ("granulate",)
    assert worker.info.structure_types == STRUCTURE_TYPES
    assert dict(worker.defaults) == {
        "structure_type": "course",
        "granularity": 3,
        "target_audience": "general",
    }


@pytest.mark.anyio
async def test_process_builds_the_template_structure_with_defaults(shelf: ArtifactShelf) -> None:
    result = await ContentGranulator().process(
        "granulate", {"topic": "Cloud computing"}, {}, shelf.context()
    )
    assert result.output == build_structure("course", "Cloud computing", 3, "general")
    assert result.summary.method == "non-llm:structure-template"
    assert result.summary.usage == Usage()
    assert result.summary.quality_score == 100.0
    assert result.summary.notes == ("no LLM configured: structure built from per-type templates",)
    assert result.summary.continue_pipeline
    assert [percent for percent, _ in shelf.progress] == [10, 30, 80, 100]
    assert shelf.artifacts == {}


@pytest.mark.anyio
async def test_params_and_material_shape_the_output(shelf: ArtifactShelf) -> None:
    inputs = {
        "topic": "Cloud computing",
        "description": "Kubernetes first.",
        "source_material": [MATERIAL],
    }
    params = {"structure_type": "knowledge_map", "granularity": 1, "target_audience": "CTOs"}
    result = await ContentGranulator().process("granulate", inputs, params, shelf.context())
    out = result.output
    assert (out["structure_type"], out["granularity"], out["target_audience"]) == (
        "knowledge_map",
        1,
        "CTOs",
    )
    concepts = [c["title"] for c in out["elements"][0]["children"]]
    # Kubernetes 3 (with the description's), containers 2, then "first" (from the
    # description) before "kernel" alphabetically.
    assert concepts == ["Kubernetes", "Containers", "First"]
    assert out["keywords"] == ["Kubernetes", "containers", "first"]


@pytest.mark.anyio
async def test_same_inputs_give_byte_identical_output(shelf: ArtifactShelf) -> None:
    inputs = {"topic": "Cloud computing", "source_material": MATERIAL}
    params = {"structure_type": "research_report", "granularity": 5}
    worker = ContentGranulator()
    first = await worker.process("granulate", inputs, params, shelf.context())
    second = await worker.process("granulate", dict(inputs), dict(params), shelf.context())
    assert dumps(first.output) == dumps(second.output)


@pytest.mark.parametrize(
    ("inputs", "params", "field"),
    [
        ({}, {}, "topic"),
        ({"topic": ""}, {}, "topic"),
        ({"topic": "x" * 501}, {}, "topic"),
        ({"topic": 7}, {}, "topic"),
        ({"topic": "ok", "source_material": ["fine", 3]}, {}, r"source_material\[1\]"),
        ({"topic": "ok", "source_material": {"a": 1}}, {}, "source_material"),
        ({"topic": "ok", "description": ["no"]}, {}, "description"),
        ({"topic": "ok", "source_material": "x" * 1_000_001}, {}, "source material"),
        ({"topic": "ok"}, {"structure_type": "essay"}, "structure type"),
        ({"topic": "ok"}, {"granularity": 0}, "granularity"),
        ({"topic": "ok"}, {"granularity": 6}, "granularity"),
        ({"topic": "ok"}, {"target_audience": " "}, "target_audience"),
        ({"topic": "ok"}, {"target_audience": "a" * 101}, "target_audience"),
    ],
)
def test_check_input_refuses_unusable_work(
    inputs: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadInputError, match=field):
        ContentGranulator().check_input("granulate", inputs, params)


def test_check_input_refuses_an_unknown_action() -> None:
    with pytest.raises(BadInputError, match="no action 'summarise'"):
        ContentGranulator().check_input("summarise", {"topic": "ok"}, {})


def test_check_input_accepts_usable_work() -> None:
    ContentGranulator().check_input(
        "granulate",
        {"topic": "ok", "source_material": ["a", "b"], "description": "c"},
        {"structure_type": "quiz", "granularity": 5, "target_audience": "teachers"},
    )


@pytest.mark.anyio
async def test_process_refuses_what_check_input_refuses(shelf: ArtifactShelf) -> None:
    with pytest.raises(BadInputError, match="topic"):
        await ContentGranulator().process("granulate", {}, {}, shelf.context())
    with pytest.raises(BadInputError, match="no action"):
        await ContentGranulator().process("build_report", {"topic": "ok"}, {}, shelf.context())


def test_estimate_uses_no_tokens_and_grows_with_granularity() -> None:
    worker = ContentGranulator()
    estimates = [
        worker.estimate("granulate", {"topic": "ok"}, {"granularity": g}) for g in (1, 3, 5)
    ]
    assert all(e.prompt_tokens == e.completion_tokens == 0 for e in estimates)
    assert all(e.cost_usd == 0 for e in estimates)
    durations = [e.duration_ms for e in estimates]
    assert durations == sorted(set(durations))
    with pytest.raises(BadInputError):
        worker.estimate("granulate", {}, {})
