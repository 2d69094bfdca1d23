"""`ContentGenerator`: expands a structure tree into text, element by element.

Action `generate`. Inputs: `structure` (a content granulator output, required) and `topic`
(default: the structure's). Params: `words_per_element` (20-1000, default 120),
`max_elements` (1-2000, default 200: elements beyond, in depth-first order, are left out and
counted) and `concurrency` (1-16, default 4: model calls at once). Output:

```
{"title", "topic", "structure_type", "method", "word_count", "section_count",
 "omitted_elements",
 "sections": [{"path": "1.2", "title", "type", "text"}],
 "artifacts": [{"type": "content", "name": "content.md", "media_type", "format", "ref"}]}
```

`sections` follow the tree depth first; `path` numbers each element by its position among
its siblings. The Markdown document `content.md` has one heading per section (level by
depth) and the text below it; every piece of text from the input or the model passes through
`escape_markdown`, so it renders as the text it is. `ref` is the stored `StorageRef` in its
JSON form.

Without a language model each paragraph is template text (`non-llm:prose-template`, see
`aifactory.workers.structure.prose_templates`), and the document says so. With one (`llm:<model>`),
each element is written by the model, at most `concurrency` at a time, with the element, its
parents' and children's titles and the audience as data; a reply must be non-empty text of
at most twice `words_per_element` words, or the stage fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import anyio
import attrs

from ..._exceptions import AIFactoryError, BadInputError, StageFailedError
from ...llm.base import LLM
from ...protocol.codec import unstructure
from ...protocol.messages import ResourceEstimate, StageSummary
from ..base import ModelWorker, WorkerContext, WorkerInfo, WorkerResult
from ..model_calls import LLMTally, ask_json, llm_method
from ..text.escape import escape_markdown
from .build import check_topic
from .prose_templates import METHOD, template_text
from .tree import StructureTree, TreeNode, read_structure

__all__ = ["MEDIA_TYPE", "ContentGenerator", "GenerationJob", "Section", "render_markdown"]

MEDIA_TYPE = "text/markdown; charset=utf-8"
_TEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}
_INSTRUCTIONS = (
    "You write the content of one element of a structured document (a course, quiz, novel, "
    "workflow, knowledge map, learning path or research report) on `data.topic` for "
    "`data.target_audience`. `data.element` is the element to write: its type, title and "
    "description, the titles of the elements it sits under (`parents`, outermost first) and "
    "of its own parts (`children`, which are written separately: introduce them, do not "
    "write them). Write about `data.words` words of plain prose, paragraphs separated by a "
    "blank line, no headings."
)


@attrs.frozen
class Section:
    """One element's generated text, with where it sits."""

    path: str
    depth: int
    title: str
    type: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """The section as output JSON."""
        return {"path": self.path, "title": self.title, "type": self.type, "text": self.text}


def _int(params: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInputError(
            f"{name} must be an integer from {low} to {high}", details={"field": name}
        )
    return value


@attrs.frozen
class GenerationJob:
    """A checked generation job: the tree, its elements to write (with their parents)."""

    tree: StructureTree
    topic: str
    words_per_element: int
    max_elements: int
    concurrency: int

    @classmethod
    def from_stage(cls, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> GenerationJob:
        """Check `inputs` and `params` (see the module docstring). Raises `BadInputError`."""
        tree = read_structure(inputs.get("structure"))
        topic = inputs.get("topic") or tree.topic
        return cls(
            tree=tree,
            topic=check_topic(topic),
            words_per_element=_int(params, "words_per_element", 20, 1000),
            max_elements=_int(params, "max_elements", 1, 2000),
            concurrency=_int(params, "concurrency", 1, 16),
        )

    @property
    def title(self) -> str:
        """The document's title: the structure's, or the topic."""
        return self.tree.title or self.topic

    def elements(self) -> list[tuple[TreeNode, tuple[str, ...]]]:
        """The elements to write, depth first, each with its parents' titles (outermost
        first), at most `max_elements`.
        """
        found: list[tuple[TreeNode, tuple[str, ...]]] = []

        def visit(nodes: tuple[TreeNode, ...], parents: tuple[str, ...]) -> None:
            for node in nodes:
                if len(found) >= self.max_elements:
                    return
                found.append((node, parents))
                visit(node.children, (*parents, node.title or "Untitled"))

        visit(self.tree.elements, ())
        return found


def _model_text(value: object, path: str, words: int) -> str:
    paragraphs = [" ".join(p.split()) for p in str(value).split("\n\n")] if value else []
    text = "\n\n".join(p for p in paragraphs if p)
    count = len(text.split())
    if not count or count > 2 * words:
        raise StageFailedError(
            f"the model wrote {count} words for element {path} (1 to {2 * words} allowed)",
            details={"path": path, "words": count, "limit": 2 * words},
        )
    return text


async def _model_sections(
    job: GenerationJob,
    elements: list[tuple[TreeNode, tuple[str, ...]]],
    llm: LLM,
    tally: LLMTally,
    ctx: WorkerContext,
) -> list[str]:
    texts: list[str | None] = [None] * len(elements)
    errors: list[AIFactoryError] = []
    limiter = anyio.CapacityLimiter(job.concurrency)

    async def write(index: int, node: TreeNode, parents: tuple[str, ...]) -> None:
        data = {
            "topic": job.topic,
            "structure_title": job.title,
            "structure_type": job.tree.structure_type,
            "target_audience": job.tree.target_audience or "general",
            "words": job.words_per_element,
            "element": {
                "path": node.path,
                "type": node.type,
                "title": node.title,
                "description": node.description,
                "parents": list(parents),
                "children": [child.title for child in node.children],
            },
        }
        async with limiter:
            try:
                reply = await ask_json(
                    llm,
                    instructions=_INSTRUCTIONS,
                    data=data,
                    schema=_TEXT_SCHEMA,
                    schema_name="element_text",
                    tally=tally,
                )
                texts[index] = _model_text(reply["text"], node.path, job.words_per_element)
            except AIFactoryError as exc:
                errors.append(exc)
                group.cancel_scope.cancel()
                return
        done = sum(text is not None for text in texts)
        await ctx.progress(30 + 50 * done / len(elements), f"wrote {done} of {len(elements)}")

    async with anyio.create_task_group() as group:
        for index, (node, parents) in enumerate(elements):
            group.start_soon(write, index, node, parents)
    if errors:
        raise errors[0]
    return [text or "" for text in texts]


def render_markdown(title: str, sections: list[Section], method: str) -> str:
    """The Markdown document: a title, a note on the method, one heading per section."""
    lines = [f"# {escape_markdown(title)}", ""]
    if method == METHOD:
        lines += [
            "> Template text: no language model was configured, so each section is phrased "
            "from the structure's own titles and descriptions.",
            "",
        ]
    for section in sections:
        level = min(section.depth + 1, 6)
        lines += [f"{'#' * level} {section.path} {escape_markdown(section.title)}", ""]
        for paragraph in section.text.split("\n\n"):
            lines += [escape_markdown(paragraph), ""]
    lines += ["---", "", f"Generated by aifactory content generator ({method})."]
    return "\n".join(lines) + "\n"


class ContentGenerator(ModelWorker[GenerationJob]):
    """Writes text for every element of a structure (action `generate`); see the module
    docstring. Reports progress at 10, 30, 80 and 100 % (and per element with a model).
    """

    info: ClassVar[WorkerInfo] = WorkerInfo(
        name="content_generator",
        description="Full text for each element of a structure, stored as Markdown.",
        actions=("generate",),
        slots=4,
        memory_mb=128,
    )
    defaults: ClassVar[Mapping[str, Any]] = {
        "words_per_element": 120,
        "max_elements": 200,
        "concurrency": 4,
    }

    job_type = GenerationJob

    def estimate(
        self, action: str, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> ResourceEstimate:
        """Tokens for one model call per element (none without a model).

        Raises `BadInputError`.
        """
        job = self.job(inputs, params)
        n = len(job.elements())
        if self.llm is None:
            return ResourceEstimate(duration_ms=10 + n // 10, memory_mb=self.info.memory_mb)
        return ResourceEstimate(
            prompt_tokens=350 * n,
            completion_tokens=n * job.words_per_element * 3 // 2,
            duration_ms=4_000 * -(-n // job.concurrency),
            memory_mb=self.info.memory_mb,
        )

    async def process(
        self,
        action: str,
        inputs: Mapping[str, Any],
        params: Mapping[str, Any],
        ctx: WorkerContext,
    ) -> WorkerResult:
        """Write and store the content. Raises `BadInputError` for unusable input and
        `StageFailedError` when the model fails or answers outside its schema.
        """
        await ctx.progress(10, "checking input")
        job = self.checked_job(action, inputs, params)
        elements = job.elements()
        tally = LLMTally()
        await ctx.progress(30, f"writing {len(elements)} elements")
        if self.llm is None:
            method = METHOD
            texts = [template_text(node, job.words_per_element) for node, _ in elements]
        else:
            method = llm_method(self.llm)
            texts = await _model_sections(job, elements, self.llm, tally, ctx)
        sections = [
            Section(node.path, node.depth, node.title or "Untitled", node.type, text)
            for (node, _), text in zip(elements, texts, strict=True)
        ]
        markdown = render_markdown(job.title, sections, method)
        ref = ctx.store_artifact(markdown.encode("utf-8"), name="content.md", media_type=MEDIA_TYPE)
        await ctx.progress(80, "content stored")
        omitted = job.tree.element_count - len(elements)
        notes = ["no LLM configured: template text from the structure"] if not self.llm else []
        if omitted:
            notes.append(f"{omitted} element(s) beyond max_elements left out")
        output = {
            "title": job.title,
            "topic": job.topic,
            "structure_type": job.tree.structure_type,
            "method": method,
            "sections": [section.to_dict() for section in sections],
            "section_count": len(sections),
            "word_count": sum(len(section.text.split()) for section in sections),
            "omitted_elements": omitted,
            "artifacts": [
                {
                    "type": "content",
                    "name": "content.md",
                    "media_type": MEDIA_TYPE,
                    "format": "markdown",
                    "ref": unstructure(ref),
                }
            ],
        }
        summary = StageSummary(
            method=method, usage=tally.usage, cost=tally.cost, notes=tuple(notes)
        )
        await ctx.progress(100, "done")
        return WorkerResult(output=output, summary=summary)
