"""Structure trees: building them, grading them, and writing prose from them.

The pure parts: the per-type `templates`, `build` (the template method, and the checks of
topic, structure type and granularity every worker here shares), `tree` (reading a structure
tree), `scores` (structural heuristics), `validation` (verdicts and settings) and
`prose_templates` (template paragraphs); `llm_tree` is the model method that asks for a tree.
The workers: `ContentGranulator` (`granulator`), `Validator` (`validator`) and
`ContentGenerator` (`content_generator`). Besides the worker framework
(`aifactory.workers.base`, `.model_calls`), this package uses only `aifactory.workers.text`.
"""

from __future__ import annotations

from .content_generator import ContentGenerator
from .granulator import ContentGranulator
from .validator import Validator

__all__ = ["ContentGenerator", "ContentGranulator", "Validator"]
