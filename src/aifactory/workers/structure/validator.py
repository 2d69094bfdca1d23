"""`Validator`: grades a structure tree by asking questions about it (action `validate`).

The questions, levels, weights, thresholds and confidence are those of
`aifactory.workers.structure.validation` (level 1: coverage and completeness; 2: + flow, plain mean;
3: + audience, weighted 40/35/25; per-type thresholds; confidence from the scores' spread).

With a language model each question is put to the model (`llm:<model>`), and its answers are
checked (each aspect once, scores 0-100, feedback 1-1000 characters). Without one, the
structural heuristics of `aifactory.workers.structure.scores` answer
(`non-llm:structure-heuristics`). A failure is an error (`StageFailedError`), never a default
score. Output:

```
{"accuracy_percentage", "passed", "threshold", "level", "confidence", "feedback", "method",
 "questions": [{"aspect", "question", "score", "feedback"}]}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from ..._exceptions import BadInputError, StageFailedError
from ...llm.base import LLM
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import ModelWorker, WorkerContext, WorkerInfo, WorkerResult
from ..model_calls import LLMTally, ask_json, llm_method, reply_text
from .build import STRUCTURE_TYPES, check_structure_type
from .scores import AspectScore, audience_score, completeness, coverage, flow
from .tree import StructureTree, TreeNode, read_structure
from .validation import (
    DEFAULT_LEVEL,
    LEVEL_ASPECTS,
    METHOD,
    QUESTIONS,
    ValidationResult,
    check_level,
    check_threshold,
    default_threshold,
    verdict,
)

__all__ = [
    "ValidationJob",
    "ValidationResult",
    "Validator",
    "run_validation",
    "validate_structure",
]

_MAX_FEEDBACK = 1000
_INSTRUCTIONS = (
    "You review hierarchical content structures (courses, quizzes, novels, workflows, "
    "knowledge maps, learning paths, research reports). `data.structure` is the structure; "
    "`data.topic`, `data.structure_type`, `data.granularity` and `data.target_audience` "
    "describe what it should be. Answer every question in `data.questions` exactly once, "
    "under its `aspect`: a score from 0 (fails completely) to 100 (fully satisfies), and one "
    "or two sentences of specific feedback saying what to change."
)


def _optional_text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 500:
        raise BadInputError(
            f"{field} must be text of at most 500 characters", details={"field": field}
        )
    return " ".join(value.split())


@attrs.frozen
class ValidationJob:
    """A checked validation: the tree, what it should be, the level and the threshold."""

    tree: StructureTree
    topic: str
    audience: str
    structure_type: str
    level: int
    threshold: float

    @classmethod
    def create(
        cls,
        structure: object,
        level: object = DEFAULT_LEVEL,
        threshold: object = None,
        *,
        topic: object = None,
        target_audience: object = None,
        structure_type: object = None,
    ) -> ValidationJob:
        """Check the arguments; `topic`, `target_audience` and `structure_type` default to the
        tree's own. A topic is required; level 3 also needs an audience. Raises
        `BadInputError` naming the offending field.
        """
        tree = read_structure(structure)
        kind = _optional_text(structure_type, "structure_type") or tree.structure_type
        if kind:
            check_structure_type(kind)
        topic_text = _optional_text(topic, "topic") or tree.topic
        if not topic_text:
            raise BadInputError("validation needs a topic", details={"field": "topic"})
        audience = _optional_text(target_audience, "target_audience") or tree.target_audience
        checked_level = check_level(level)
        if checked_level == 3 and not audience:
            raise BadInputError(
                "level 3 validation needs a target audience", details={"field": "target_audience"}
            )
        limit = check_threshold(threshold)
        return cls(
            tree=tree,
            topic=topic_text,
            audience=audience,
            structure_type=kind,
            level=checked_level,
            threshold=default_threshold(kind) if limit is None else limit,
        )

    def heuristic_scores(self) -> list[AspectScore]:
        """The non-LLM answers to this level's questions, in question order."""
        scores = {
            "coverage": lambda: coverage(self.tree, self.topic),
            "completeness": lambda: completeness(
                self.tree, self.structure_type, self.tree.granularity
            ),
            "flow": lambda: flow(self.tree),
            "audience": lambda: audience_score(self.tree, self.audience),
        }
        return [scores[aspect]() for aspect in LEVEL_ASPECTS[self.level]]

    def model_data(self) -> dict[str, Any]:
        """What the model is shown (as data): the tree and the questions."""

        def element(node: TreeNode) -> dict[str, Any]:
            return {
                "type": node.type,
                "title": node.title,
                "description": node.description,
                "children": [element(child) for child in node.children],
            }

        return {
            "topic": self.topic,
            "structure_type": self.structure_type,
            "granularity": self.tree.granularity,
            "target_audience": self.audience,
            "structure": {
                "title": self.tree.title,
                "elements": [element(node) for node in self.tree.elements],
            },
            "questions": [{"aspect": a, "question": QUESTIONS[a]} for a in self.aspects],
        }

    @property
    def aspects(self) -> tuple[str, ...]:
        """The aspects asked at this level."""
        return LEVEL_ASPECTS[self.level]

    def answer_schema(self) -> dict[str, Any]:
        """The JSON schema of the model's answers: each aspect of the level exactly once."""
        n = len(self.aspects)
        answer = {
            "type": "object",
            "additionalProperties": False,
            "required": ["aspect", "score", "feedback"],
            "properties": {
                "aspect": {"type": "string", "enum": list(self.aspects)},
                "score": {"type": "number", "minimum": 0, "maximum": 100},
                "feedback": {"type": "string"},
            },
        }
        return {
            "type": "object",
            "additionalProperties": False,
            "required": ["answers"],
            "properties": {
                "answers": {"type": "array", "minItems": n, "maxItems": n, "items": answer}
            },
        }


async def _model_answers(job: ValidationJob, llm: LLM, tally: LLMTally) -> list[AspectScore]:
    reply = await ask_json(
        llm,
        instructions=_INSTRUCTIONS,
        data=job.model_data(),
        schema=job.answer_schema(),
        schema_name="validation_answers",
        tally=tally,
    )
    by_aspect: dict[str, AspectScore] = {}
    for i, answer in enumerate(reply["answers"]):
        aspect = answer["aspect"]
        if aspect in by_aspect:
            raise StageFailedError(
                f"the model answered the {aspect} question twice", details={"aspect": aspect}
            )
        feedback = reply_text(answer["feedback"], f"/answers/{i}/feedback", _MAX_FEEDBACK)
        by_aspect[aspect] = AspectScore(aspect, round(float(answer["score"]), 1), feedback)
    return [by_aspect[aspect] for aspect in job.aspects]


async def validate_structure(
    structure: Mapping[str, Any],
    level: int = DEFAULT_LEVEL,
    threshold: float | None = None,
    llm: LLM | None = None,
    *,
    topic: str | None = None,
    target_audience: str | None = None,
    structure_type: str | None = None,
) -> ValidationResult:
    """Validate `structure` (a granulator tree) at `level`, with `llm` when given.

    `threshold` defaults to the structure type's; `topic`, `target_audience` and
    `structure_type` default to the tree's own. The result carries the usage and cost of the
    model call. Raises `BadInputError` for an unusable structure or arguments, and
    `StageFailedError` (or the provider's `WorkerError`) when the model fails or answers
    outside the schema — never a default score.
    """
    job = ValidationJob.create(
        structure,
        level,
        threshold,
        topic=topic,
        target_audience=target_audience,
        structure_type=structure_type,
    )
    return await run_validation(job, llm)


async def run_validation(job: ValidationJob, llm: LLM | None) -> ValidationResult:
    """Answer `job`'s questions with `llm`, or with the heuristics when it is `None`.

    Raises `StageFailedError` (or the provider's `WorkerError`) when the model fails.
    """
    if llm is None:
        return verdict(job.heuristic_scores(), job.level, job.threshold, METHOD)
    tally = LLMTally()
    answers = await _model_answers(job, llm, tally)
    return verdict(
        answers, job.level, job.threshold, llm_method(llm), usage=tally.usage, cost=tally.cost
    )


class Validator(ModelWorker[ValidationJob]):
    """Grades a structure tree against its topic, type and audience (action `validate`).

    Inputs: `structure` (required), `topic`, `target_audience`, `structure_type`. Params:
    `level` (1-3, default 2), `threshold` (0-100, default per structure type) and
    `stop_on_failure` (default false: a failed validation is reported, and the pipeline goes
    on; true stops it). Reports progress at 10, 30, 80 and 100 %.
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="validator",
        description="Grades structures by coverage, completeness, flow and audience fit "
        "against per-type thresholds.",
        actions=("validate",),
        structure_types=STRUCTURE_TYPES,
        slots=8,
        memory_mb=64,
    )
    defaults: ClassVar[Mapping[str, Any]] = {"level": DEFAULT_LEVEL, "stop_on_failure": False}

    def job(self, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> ValidationJob:
        """The checked job for `inputs` and `params` merged over `defaults`.

        Raises `BadInputError`.
        """
        merged = {**self.defaults, **params}
        if not isinstance(merged.get("stop_on_failure"), bool):
            raise BadInputError("stop_on_failure must be true or false")
        return ValidationJob.create(
            inputs.get("structure"),
            merged.get("level"),
            merged.get("threshold"),
            topic=inputs.get("topic"),
            target_audience=inputs.get("target_audience"),
            structure_type=inputs.get("structure_type"),
        )

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """Tokens for one model call (none without a model). Raises `BadInputError`."""
        job = self.job(inputs, params)
        if self.llm is None:
            return ResourceEstimate(duration_ms=10, memory_mb=self.info.memory_mb)
        chars = sum(len(n.title) + len(n.description) + 40 for n in job.tree.walk())
        return ResourceEstimate(
            prompt_tokens=300 + chars // 4,
            completion_tokens=80 * len(job.aspects),
            duration_ms=5_000,
            memory_mb=self.info.memory_mb,
        )

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Validate the structure. Raises `BadInputError` for unusable input and
        `StageFailedError` when the model fails or answers outside its schema.
        """
        await ctx.progress(10, "checking input")
        job = self.checked_job(action, inputs, params)
        how = "asking the model" if self.llm else "scoring the structure"
        await ctx.progress(30, f"{how}: level {job.level}")
        result = await run_validation(job, self.llm)
        await ctx.progress(80, f"accuracy {result.accuracy_percentage:g}%")
        stop = {**self.defaults, **params}["stop_on_failure"] and not result.passed
        notes = [] if self.llm else ["no LLM configured: scored by structural heuristics"]
        if not result.passed:
            notes.append(f"validation failed: {result.accuracy_percentage:g}% < {job.threshold:g}%")
        summary = StageSummary(
            method=result.method,
            usage=result.usage,
            cost=result.cost,
            quality_score=result.accuracy_percentage,
            continue_pipeline=not stop,
            notes=tuple(notes),
        )
        await ctx.progress(100, "done")
        return WorkerResult(output=result.to_output(), summary=summary)
