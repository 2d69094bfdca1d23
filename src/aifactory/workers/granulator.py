"""`ContentGranulator`: turns a topic into a hierarchical structure (course, quiz, novel, ...).

Without a language model it uses the documented non-LLM method `non-llm:structure-template`
(see `aifactory.workers.structures`): per-type templates phrased from the topic, with sub-topic
titles ranked out of any supplied material. The output is a typed tree:

```
{"structure_type", "topic", "target_audience", "granularity", "title", "keywords",
 "elements": [{"type", "title", "description", "order", "children": [...]}, ...],
 "element_count", "depth", "method"}
```

`keywords` lists the material keywords that became sub-topic titles, in rank order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from .._exceptions import BadInputError
from ..models.execution import Usage
from ..protocol.messages import ResourceEstimate, StageSummary
from .base import Worker, WorkerContext, WorkerInfo, WorkerResult
from .structures import (
    METHOD,
    STRUCTURE_TYPES,
    build_structure,
    check_granularity,
    check_structure_type,
    check_topic,
    expected_element_count,
    structure_quality,
)

__all__ = ["MAX_AUDIENCE_CHARS", "MAX_MATERIAL_CHARS", "ContentGranulator", "GranulationJob"]

MAX_MATERIAL_CHARS = 1_000_000  # keyword ranking is linear, but a bound keeps a stage bounded
MAX_AUDIENCE_CHARS = 100


@attrs.frozen
class GranulationJob:
    """A checked granulation job: what to structure, how, and from which material."""

    topic: str
    structure_type: str
    granularity: int
    target_audience: str
    material: tuple[str, ...] = ()

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> GranulationJob:
        """Check stage `inputs` and `params` (already merged over the worker's defaults).

        Inputs: `topic` (required, 1-500 characters), `description` (text) and
        `source_material` (text or a list of texts), both optional. Params: `structure_type`,
        `granularity` (1-5) and `target_audience` (1-100 characters). Raises `BadInputError`
        naming the offending field.
        """
        material: list[str] = []
        description = inputs.get("description")
        if description is not None:
            material.append(_text(description, "description"))
        source = inputs.get("source_material")
        if isinstance(source, list):
            material.extend(_text(item, f"source_material[{i}]") for i, item in enumerate(source))
        elif source is not None:
            material.append(_text(source, "source_material"))
        size = sum(len(text) for text in material)
        if size > MAX_MATERIAL_CHARS:
            raise BadInputError(
                f"description and source material exceed {MAX_MATERIAL_CHARS} characters",
                details={"length": size, "limit": MAX_MATERIAL_CHARS},
            )
        audience = params.get("target_audience")
        if not isinstance(audience, str) or not 0 < len(audience.strip()) <= MAX_AUDIENCE_CHARS:
            raise BadInputError(
                f"target_audience must be a non-empty string of at most {MAX_AUDIENCE_CHARS} "
                "characters",
                details={"field": "target_audience"},
            )
        return cls(
            topic=check_topic(inputs.get("topic")),
            structure_type=check_structure_type(params.get("structure_type")),
            granularity=check_granularity(params.get("granularity")),
            target_audience=" ".join(audience.split()),
            material=tuple(material),
        )


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise BadInputError(f"{field} must be text", details={"field": field})
    return value


class ContentGranulator(Worker):
    """Builds hierarchical content structures from a topic (action `granulate`).

    Deterministic: the same inputs and parameters give a byte-identical output. Reports
    progress at 10, 30, 80 and 100 %.
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="content_granulator",
        description="Hierarchical structures (course, quiz, novel, workflow, knowledge map, "
        "learning path, research report) for a topic, from per-type templates.",
        actions=("granulate",),
        structure_types=STRUCTURE_TYPES,
        slots=8,
        memory_mb=64,
    )
    defaults: ClassVar[Mapping[str, Any]] = {
        "structure_type": "course",
        "granularity": 3,
        "target_audience": "general",
    }

    def job(self, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> GranulationJob:
        """The checked job for `inputs` and `params` merged over `defaults`.

        Raises `BadInputError`.
        """
        return GranulationJob.from_stage(inputs, {**self.defaults, **params})

    def check_input(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> None:
        """Refuse an unknown action or unusable inputs/params. Raises `BadInputError`."""
        super().check_input(action, inputs, params)
        self.job(inputs, params)

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """No tokens (no LLM); time grows with the number of elements the template builds.

        Raises `BadInputError` for unusable inputs or params.
        """
        job = self.job(inputs, params)
        elements = expected_element_count(job.structure_type, job.granularity)
        material_ms = sum(len(text) for text in job.material) // 100_000
        return ResourceEstimate(
            duration_ms=10 + elements // 10 + material_ms, memory_mb=self.info.memory_mb
        )

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Build the structure. Raises `BadInputError` for unusable inputs or params."""
        await ctx.progress(10, "checking input")
        # Checked again here: a caller may process without a handshake (embedded use).
        super().check_input(action, inputs, params)
        job = self.job(inputs, params)
        await ctx.progress(30, f"building a {job.structure_type} structure from its template")
        tree = build_structure(
            job.structure_type, job.topic, job.granularity, job.target_audience, job.material
        )
        await ctx.progress(80, f"built {tree['element_count']} elements")
        summary = StageSummary(
            method=METHOD,
            usage=Usage(),
            quality_score=structure_quality(tree),
            notes=("no LLM configured: structure built from per-type templates",),
        )
        await ctx.progress(100, "done")
        return WorkerResult(output=tree, summary=summary)
