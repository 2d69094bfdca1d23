"""Validation as designed: levels, questions, accuracy, confidence, thresholds and results.

Levels decide the questions, each answered with a score from 0 to 100:

| level | aspects asked | accuracy |
|---|---|---|
| 1 | coverage, completeness | their mean |
| 2 | + flow | the plain mean of the three |
| 3 | + audience | 40 % coverage/completeness, 35 % flow, 25 % audience |

At level 3 the level-1 pair shares its 40 % equally: accuracy = 0.20 x coverage +
0.20 x completeness + 0.35 x flow + 0.25 x audience. Accuracy is rounded to one decimal and
passes when it is at least the threshold: by default the structure type's (course 70, quiz 75,
novel 65, workflow 70, knowledge_map 70, learning_path 72, research_report 70; 70 for any
other). Confidence = 1 - (population standard deviation of the scores / 50), clamped to
[0, 1] and rounded to three decimals: answers that agree give confidence.

This module is pure (no model, no I/O); `aifactory.workers.structure.validator` asks the questions.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from ..._exceptions import BadInputError
from ...models.execution import Cost, Usage
from .scores import AspectScore

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_THRESHOLD",
    "LEVEL_ASPECTS",
    "MAX_RETRIES",
    "METHOD",
    "QUESTIONS",
    "THRESHOLDS",
    "QuestionResult",
    "ValidationResult",
    "ValidationSettings",
    "accuracy",
    "check_level",
    "check_threshold",
    "confidence",
    "default_threshold",
    "verdict",
]

DEFAULT_LEVEL = 2
MAX_RETRIES = 5
METHOD = "non-llm:structure-heuristics"
THRESHOLDS: Mapping[str, float] = {
    "course": 70,
    "quiz": 75,
    "novel": 65,
    "workflow": 70,
    "knowledge_map": 70,
    "learning_path": 72,
    "research_report": 70,
}
DEFAULT_THRESHOLD = 70.0
LEVEL_ASPECTS: Mapping[int, tuple[str, ...]] = {
    1: ("coverage", "completeness"),
    2: ("coverage", "completeness", "flow"),
    3: ("coverage", "completeness", "flow", "audience"),
}
QUESTIONS: Mapping[str, str] = {
    "coverage": "How well do the element titles cover the main sub-topics of the topic?",
    "completeness": "How complete is the structure: does every element have a useful title "
    "and description, and does it reach the depth and size its granularity calls for?",
    "flow": "Do the elements follow a logical order, each building on what came before, "
    "with balanced siblings?",
    "audience": "How well is the structure pitched at its target audience (level, "
    "vocabulary, examples)?",
}
_LEVEL3_WEIGHTS = {
    "coverage": Decimal("0.20"),
    "completeness": Decimal("0.20"),
    "flow": Decimal("0.35"),
    "audience": Decimal("0.25"),
}


def default_threshold(structure_type: str | None) -> float:
    """The pass threshold for `structure_type` (70 for an unknown or missing type)."""
    return float(THRESHOLDS.get(structure_type or "", DEFAULT_THRESHOLD))


def accuracy(scores: Mapping[str, float], level: int) -> float:
    """The accuracy percentage (one decimal) of aspect `scores` at `level` (see the table).

    Raises `KeyError` if an aspect of the level is missing.
    """
    values = {aspect: Decimal(str(scores[aspect])) for aspect in LEVEL_ASPECTS[level]}
    if level == 3:
        total = sum((_LEVEL3_WEIGHTS[a] * v for a, v in values.items()), Decimal(0))
    else:
        total = sum(values.values(), Decimal(0)) / len(values)
    return float(round(total, 1))


def confidence(scores: list[float]) -> float:
    """1 - (population standard deviation of `scores` ÷ 50), clamped to [0, 1], 3 decimals."""
    spread = statistics.pstdev(scores) if scores else 0.0
    return round(min(1.0, max(0.0, 1 - spread / 50)), 3)


@attrs.frozen
class QuestionResult:
    """One question asked about the structure, with its score and feedback."""

    aspect: str
    question: str
    score: float
    feedback: str

    def to_dict(self) -> dict[str, Any]:
        """The question as output JSON."""
        return {
            "aspect": self.aspect,
            "question": self.question,
            "score": self.score,
            "feedback": self.feedback,
        }


@attrs.frozen
class ValidationResult:
    """A validation's verdict, what it asked, and the model usage and cost it took."""

    accuracy_percentage: float
    passed: bool
    threshold: float
    level: int
    questions: tuple[QuestionResult, ...]
    feedback: str
    confidence: float
    method: str
    usage: Usage = attrs.field(factory=Usage)
    cost: Cost = attrs.field(factory=Cost)

    def to_output(self) -> dict[str, Any]:
        """The result as the validator's output JSON."""
        return {
            "accuracy_percentage": self.accuracy_percentage,
            "passed": self.passed,
            "threshold": self.threshold,
            "level": self.level,
            "confidence": self.confidence,
            "feedback": self.feedback,
            "method": self.method,
            "questions": [q.to_dict() for q in self.questions],
        }


def check_level(value: object) -> int:
    """Return `value` if it is a validation level (1, 2 or 3). Raises `BadInputError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in LEVEL_ASPECTS:
        raise BadInputError("level must be 1, 2 or 3", details={"field": "level"})
    return value


def check_threshold(value: object) -> float | None:
    """`value` as a threshold (a number from 0 to 100), or None for the type's default.

    Raises `BadInputError`.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise BadInputError(
            "threshold must be a number from 0 to 100", details={"field": "threshold"}
        )
    return float(value)


def verdict(
    answers: Sequence[AspectScore],
    level: int,
    threshold: float,
    method: str,
    *,
    usage: Usage | None = None,
    cost: Cost | None = None,
) -> ValidationResult:
    """The result of `answers` (one per aspect of `level`, in order) against `threshold`.

    The overall feedback says whether it passed; when it did not, it lists every aspect's
    feedback, weakest first, for whoever regenerates the structure.
    """
    scores = {answer.aspect: answer.score for answer in answers}
    percent = accuracy(scores, level)
    passed = percent >= threshold
    if passed:
        feedback = f"Accuracy {percent:g}% meets the threshold of {threshold:g}%."
    else:
        weakest = sorted(answers, key=lambda a: (a.score, LEVEL_ASPECTS[3].index(a.aspect)))
        notes = "; ".join(f"{a.aspect} ({a.score:g}): {a.feedback}" for a in weakest)
        feedback = (
            f"Accuracy {percent:g}% is below the threshold of {threshold:g}%. "
            f"Weakest first: {notes}"
        )
    return ValidationResult(
        accuracy_percentage=percent,
        passed=passed,
        threshold=threshold,
        level=level,
        questions=tuple(
            QuestionResult(a.aspect, QUESTIONS[a.aspect], a.score, a.feedback) for a in answers
        ),
        feedback=feedback,
        confidence=confidence([a.score for a in answers]),
        method=method,
        usage=usage or Usage(),
        cost=cost or Cost(),
    )


@attrs.frozen
class ValidationSettings:
    """The `validation` parameter of a producing stage (the content granulator).

    `{"enabled": bool, "level": 1-3, "threshold": 0-100 or null, "max_retries": 0-5}`; every
    member optional (defaults: disabled, level 2, the structure type's threshold, 2 retries).
    """

    enabled: bool = False
    level: int = DEFAULT_LEVEL
    threshold: float | None = None
    max_retries: int = 2

    @classmethod
    def from_param(cls, value: object) -> ValidationSettings:
        """Check the `validation` parameter (None means disabled). Raises `BadInputError`."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise BadInputError("validation must be an object", details={"field": "validation"})
        unknown = sorted(set(value) - {"enabled", "level", "threshold", "max_retries"})
        if unknown:
            raise BadInputError(
                f"validation has unknown members: {', '.join(map(str, unknown))}",
                details={"field": "validation", "unknown": unknown},
            )
        enabled = value.get("enabled", False)
        if not isinstance(enabled, bool):
            raise BadInputError("validation.enabled must be true or false")
        retries = value.get("max_retries", 2)
        if isinstance(retries, bool) or not isinstance(retries, int):
            retries = -1
        if not 0 <= retries <= MAX_RETRIES:
            raise BadInputError(
                f"validation.max_retries must be an integer from 0 to {MAX_RETRIES}",
                details={"field": "validation.max_retries"},
            )
        return cls(
            enabled=enabled,
            level=check_level(value.get("level", DEFAULT_LEVEL)),
            threshold=check_threshold(value.get("threshold")),
            max_retries=retries,
        )
