"""The content granulator's LLM method (`llm:<model>`): a typed tree asked of a model.

The model is told the structure type, granularity, audience and the template's shape for that
granularity (element types and elements per parent on each level); it sees the topic, any
source material (at most 40,000 characters, cut in order) and the material's salient phrases
(`aifactory.workers.text.phrases`) as data, and, when a validation failed, the validator's verdict
and feedback. It answers with a tree checked against a schema that bounds it: per level the
element types the template allows (an enum), at most 12 children per parent, no deeper than
the template's depth for the granularity. After the schema, `read_model_tree` checks the
rest: titles of 1-200 characters, descriptions of 1-2,000, sibling orders exactly 1..n (the
elements are put in that order), at most 400 elements in all. Anything else raises
`StageFailedError`, never a patched tree.
"""

from __future__ import annotations

from typing import Any

import attrs

from ..._exceptions import StageFailedError
from ...llm.base import LLM
from ..model_calls import LLMTally, ask_json, llm_method, reply_text
from ..text.keywords import tokenize
from ..text.phrases import salient_phrases
from .build import expected_depth, level_sizes
from .templates import TEMPLATES

__all__ = [
    "MAX_CHILDREN",
    "MAX_ELEMENTS",
    "MAX_PROMPT_MATERIAL",
    "StructureRequest",
    "generate_tree",
    "read_model_tree",
    "tree_schema",
]

MAX_CHILDREN = 12
MAX_ELEMENTS = 400
MAX_PROMPT_MATERIAL = 40_000
_MAX_TITLE = 200
_MAX_DESCRIPTION = 2_000
_MAX_TREE_TITLE = 300
_CANDIDATES = 24
_INSTRUCTIONS = (
    "You design hierarchical content structures: courses, quizzes, novels, workflows, "
    "knowledge maps, learning paths and research reports. Build one structure of type "
    "`data.structure_type` on `data.topic` for `data.target_audience`. Follow `data.shape`: "
    "for each level, top first, the element types allowed and about how many elements each "
    "parent has. Draw sub-topics from `data.source_material` and `data.candidate_subtopics` "
    "where given. Give every element a type allowed on its level, a specific title, a "
    "description of one or two sentences, its order among its siblings (1, 2, 3, ...) and "
    "its children. If `data.validator_feedback` is present, a reviewer found the previous "
    "attempt lacking: produce a new structure that fixes what the feedback says."
)


@attrs.frozen
class StructureRequest:
    """What the model is asked to structure (checked by the granulator beforehand)."""

    topic: str
    structure_type: str
    granularity: int
    target_audience: str
    material: tuple[str, ...] = ()

    def prompt_material(self) -> tuple[list[str], bool]:
        """The material as sent (cut in order at `MAX_PROMPT_MATERIAL` characters) and
        whether it was cut.
        """
        sent: list[str] = []
        room = MAX_PROMPT_MATERIAL
        for text in self.material:
            if room <= 0:
                return sent, True
            sent.append(text[:room])
            room -= len(text)
        return sent, room < 0


def _element_schema(structure_type: str, level: int, depth: int) -> dict[str, Any]:
    types = sorted(set(TEMPLATES[structure_type].levels[level].types))
    if level + 1 < depth:
        children: dict[str, Any] = {
            "type": "array",
            "maxItems": MAX_CHILDREN,
            "items": _element_schema(structure_type, level + 1, depth),
        }
    else:  # the deepest level the granularity allows: no children
        children = {
            "type": "array",
            "maxItems": 0,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {},
                "required": [],
            },
        }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "title", "description", "order", "children"],
        "properties": {
            "type": {"type": "string", "enum": types},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "order": {"type": "integer", "minimum": 1, "maximum": MAX_CHILDREN},
            "children": children,
        },
    }


def tree_schema(structure_type: str, granularity: int) -> dict[str, Any]:
    """The JSON schema of the model's tree for `structure_type` at `granularity`.

    Raises `BadInputError` for an unknown type or a granularity outside 1-5.
    """
    depth = expected_depth(granularity)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "elements"],
        "properties": {
            "title": {"type": "string"},
            "elements": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_CHILDREN,
                "items": _element_schema(structure_type, 0, depth),
            },
        },
    }


def _shape(request: StructureRequest) -> list[dict[str, Any]]:
    template = TEMPLATES[request.structure_type]
    sizes = level_sizes(request.structure_type, request.granularity)
    return [
        {
            "level": level + 1,
            "element_types": sorted(set(template.levels[level].types)),
            "elements_per_parent": size,
        }
        for level, size in enumerate(sizes)
    ]


@attrs.define
class _TreeReader:
    count: int = 0

    def elements(self, items: list[Any], where: str) -> list[dict[str, Any]]:
        orders = sorted(int(item["order"]) for item in items)
        if orders != list(range(1, len(items) + 1)):
            raise StageFailedError(
                f"the model's sibling orders at {where} are not 1..{len(items)}",
                details={"path": where},
            )
        self.count += len(items)
        if self.count > MAX_ELEMENTS:
            raise StageFailedError(
                f"the model's structure has more than {MAX_ELEMENTS} elements",
                details={"limit": MAX_ELEMENTS},
            )
        read = []
        for index, item in sorted(enumerate(items), key=lambda pair: int(pair[1]["order"])):
            at = f"{where}/{index}"
            read.append(
                {
                    "type": item["type"],
                    "title": reply_text(item["title"], f"{at}/title", _MAX_TITLE),
                    "description": reply_text(
                        item["description"], f"{at}/description", _MAX_DESCRIPTION
                    ),
                    "order": int(item["order"]),
                    "children": self.elements(item["children"], f"{at}/children"),
                }
            )
        return read


def _depth(elements: list[dict[str, Any]]) -> int:
    return max((1 + _depth(e["children"]) for e in elements), default=0)


def read_model_tree(data: Any, request: StructureRequest, method: str) -> dict[str, Any]:
    """The granulator output for a schema-checked model reply `data` (see module docstring).

    Raises `StageFailedError` for empty or overlong texts, sibling orders other than 1..n, or
    more than `MAX_ELEMENTS` elements.
    """
    reader = _TreeReader()
    elements = reader.elements(data["elements"], "/elements")
    return {
        "structure_type": request.structure_type,
        "topic": request.topic,
        "target_audience": request.target_audience,
        "granularity": request.granularity,
        "title": reply_text(data["title"], "/title", _MAX_TREE_TITLE),
        "keywords": [],
        "elements": elements,
        "element_count": reader.count,
        "depth": _depth(elements),
        "method": method,
    }


async def generate_tree(
    llm: LLM,
    request: StructureRequest,
    tally: LLMTally,
    feedback: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ask `llm` for the structure of `request`; `feedback` (a validator's verdict) goes to
    the model as data. Usage and cost land in `tally`.

    Raises `StageFailedError` for a reply outside the schema or the checks above, and what
    the provider raises.
    """
    material, _ = request.prompt_material()
    text = "\n".join(request.material)
    exclude = [*tokenize(request.topic), *tokenize(request.target_audience)]
    data: dict[str, Any] = {
        "topic": request.topic,
        "structure_type": request.structure_type,
        "granularity": request.granularity,
        "target_audience": request.target_audience,
        "shape": _shape(request),
        "source_material": material,
        "candidate_subtopics": salient_phrases(text, _CANDIDATES, exclude=exclude),
    }
    if feedback is not None:
        data["validator_feedback"] = feedback
    reply = await ask_json(
        llm,
        instructions=_INSTRUCTIONS,
        data=data,
        schema=tree_schema(request.structure_type, request.granularity),
        schema_name="content_structure",
        tally=tally,
    )
    return read_model_tree(reply, request, llm_method(llm))
