"""`ContentGranulator`: turns a topic into a hierarchical structure (course, quiz, novel, ...).

Two methods make the typed tree:

- without a language model, `non-llm:structure-template` (see
  `aifactory.workers.structure.build`): per-type templates phrased from the topic, with
  sub-topic titles taken from the salient phrases of any supplied material;
- with one, `llm:<model>` (see `aifactory.workers.structure.llm_tree`): the model builds the
  tree within a schema bounded by the template's element types and depth.

The output is a typed tree:

```
{"structure_type", "topic", "target_audience", "granularity", "title", "keywords",
 "elements": [{"type", "title", "description", "order", "children": [...]}, ...],
 "element_count", "depth", "method", "validation"?}
```

`keywords` lists the material phrases that became sub-topic titles, in rank order (empty for
the LLM method, where the model chose the titles).

**Validation.** The param `validation` (`{"enabled", "level", "threshold", "max_retries"}`,
see `aifactory.workers.structure.validation.ValidationSettings`; disabled by default) grades
the tree with the validator (`aifactory.workers.structure.validator`, with the same model if
there is one). When it fails, the LLM method regenerates the tree with the validator's
verdict and feedback in the user message, up to `max_retries` times; the template method
cannot change its tree deterministically, so it reports the failure honestly after one
attempt. Either way the last tree is kept, with

```
"validation": {"passed", "accuracy_percentage", "threshold", "level", "confidence",
               "attempts": [{"attempt", "passed", "accuracy_percentage", "confidence",
                             "feedback", "method", "questions"}, ...]}
```

and the stage's usage and cost count every generation and validation call once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..._exceptions import BadInputError
from ...llm.base import LLM
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import ModelWorker, WorkerContext, WorkerInfo, WorkerResult
from ..model_calls import LLMTally
from .build import (
    STRUCTURE_TYPES,
    build_structure,
    check_granularity,
    check_structure_type,
    check_topic,
    expected_element_count,
    structure_quality,
)
from .llm_tree import MAX_PROMPT_MATERIAL, StructureRequest, generate_tree
from .validation import ValidationResult, ValidationSettings
from .validator import ValidationJob, run_validation

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
    validation: ValidationSettings = attrs.field(factory=ValidationSettings)

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> GranulationJob:
        """Check stage `inputs` and `params` (already merged over the worker's defaults).

        Inputs: `topic` (required, 1-500 characters), `description` (text) and
        `source_material` (text or a list of texts), both optional. Params: `structure_type`,
        `granularity` (1-5), `target_audience` (1-100 characters) and `validation` (see
        `ValidationSettings`). Raises `BadInputError` naming the offending field.
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
            validation=ValidationSettings.from_param(params.get("validation")),
        )

    @property
    def request(self) -> StructureRequest:
        """What the LLM method is asked to structure."""
        return StructureRequest(
            self.topic, self.structure_type, self.granularity, self.target_audience, self.material
        )


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise BadInputError(f"{field} must be text", details={"field": field})
    return value


class ContentGranulator(ModelWorker[GranulationJob]):
    """Builds hierarchical content structures from a topic (action `granulate`).

    With `llm`, the model builds the tree (`llm:<model>`); without, the templates do, and the
    same inputs and parameters give a byte-identical output. Reports progress at 10, 30, 80
    and 100 % (and once per validation attempt in between).
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="content_granulator",
        description="Hierarchical structures (course, quiz, novel, workflow, knowledge map, "
        "learning path, research report) for a topic, from a language model or per-type "
        "templates, optionally validated.",
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

    job_type = GranulationJob

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """Without a model no tokens, and time grows with the elements the template builds;
        with one, the tokens of one generation (and one validation when enabled).

        Raises `BadInputError` for unusable inputs or params.
        """
        job = self.job(inputs, params)
        elements = expected_element_count(job.structure_type, job.granularity)
        material = sum(len(text) for text in job.material)
        if self.llm is None:
            return ResourceEstimate(
                duration_ms=10 + elements // 10 + material // 100_000,
                memory_mb=self.info.memory_mb,
            )
        prompt = 600 + min(material, MAX_PROMPT_MATERIAL) // 4
        completion = 60 * elements
        if job.validation.enabled:
            prompt, completion = prompt + 300 + completion, completion + 320
        return ResourceEstimate(
            prompt_tokens=prompt,
            completion_tokens=completion,
            duration_ms=10_000 + 50 * elements,
            memory_mb=self.info.memory_mb,
        )

    async def _generate(
        self, job: GranulationJob, tally: LLMTally, feedback: ValidationResult | None = None
    ) -> dict[str, Any]:
        if self.llm is None:
            return build_structure(
                job.structure_type, job.topic, job.granularity, job.target_audience, job.material
            )
        verdict = None if feedback is None else feedback.to_output()
        return await generate_tree(self.llm, job.request, tally, verdict)

    async def _validate(
        self, job: GranulationJob, tree: dict[str, Any], tally: LLMTally, ctx: WorkerContext
    ) -> tuple[dict[str, Any], ValidationResult, list[dict[str, Any]]]:
        """Validate `tree`, regenerating it with feedback while it fails (LLM method only)."""
        settings = job.validation
        attempts: list[dict[str, Any]] = []
        total = 1 + (settings.max_retries if self.llm else 0)
        while True:
            check = ValidationJob.create(
                tree,
                settings.level,
                settings.threshold,
                target_audience=job.target_audience,
            )
            result = await run_validation(check, self.llm)
            tally.absorb(result.usage, result.cost)
            attempts.append({"attempt": len(attempts) + 1, **_attempt(result)})
            step = f"attempt {len(attempts)}: {result.accuracy_percentage:g}%"
            await ctx.progress(30 + 50 * len(attempts) / total, step)
            if result.passed or len(attempts) >= total:
                return tree, result, attempts
            tree = await self._generate(job, tally, feedback=result)

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Build (and, when enabled, validate) the structure.

        Raises `BadInputError` for unusable inputs or params, and `StageFailedError` (or the
        provider's `WorkerError`) when the model fails or answers outside its schema.
        """
        await ctx.progress(10, "checking input")
        # Checked again here: a caller may process without a handshake (embedded use).
        job = self.checked_job(action, inputs, params)
        tally = LLMTally()
        how = "asking the model for" if self.llm else "building from its template"
        await ctx.progress(30, f"{how} a {job.structure_type} structure")
        tree = await self._generate(job, tally)
        notes = _method_notes(self.llm, job)
        quality = structure_quality(tree)
        if job.validation.enabled:
            tree, result, attempts = await self._validate(job, tree, tally, ctx)
            tree = {**tree, "validation": _validation_output(result, attempts)}
            quality = result.accuracy_percentage
            if not result.passed:
                notes.append(_failure_note(result, len(attempts), self.llm is None))
        await ctx.progress(80, f"built {tree['element_count']} elements")
        summary = StageSummary(
            method=tree["method"],
            usage=tally.usage,
            cost=tally.cost,
            quality_score=quality,
            notes=tuple(notes),
        )
        await ctx.progress(100, "done")
        return WorkerResult(output=tree, summary=summary)


def _method_notes(llm: LLM | None, job: GranulationJob) -> list[str]:
    if llm is None:
        return ["no LLM configured: structure built from per-type templates"]
    _, cut = job.request.prompt_material()
    return [f"source material cut to {MAX_PROMPT_MATERIAL} characters for the model"] if cut else []


def _attempt(result: ValidationResult) -> dict[str, Any]:
    output = result.to_output()
    return {
        key: output[key]
        for key in (
            "passed",
            "accuracy_percentage",
            "confidence",
            "feedback",
            "method",
            "questions",
        )
    }


def _validation_output(result: ValidationResult, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "passed": result.passed,
        "accuracy_percentage": result.accuracy_percentage,
        "threshold": result.threshold,
        "level": result.level,
        "confidence": result.confidence,
        "attempts": attempts,
    }


def _failure_note(result: ValidationResult, attempts: int, template: bool) -> str:
    note = (
        f"validation failed: {result.accuracy_percentage:g}% < {result.threshold:g}% "
        f"after {attempts} attempt(s); the last structure is kept"
    )
    if template:
        note += " (no LLM: a template structure cannot change on regeneration, so not retried)"
    return note
