"""The content generator: template text, the stored Markdown, escaping and the model path."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from markdown_it import MarkdownIt

from aifactory._exceptions import BadInputError, StageFailedError, WorkerError
from aifactory.llm import Message
from aifactory.models import Cost, StorageRef, Usage
from aifactory.protocol.codec import dumps, unstructure
from aifactory.workers.structure.build import build_structure
from aifactory.workers.structure.content_generator import MEDIA_TYPE, ContentGenerator
from tests.scripted_llm import ScriptedLLM

from ..conftest import ArtifactShelf

EVIL = "# Evil\n[click](javascript:alert(1)) <script>x</script>"
MATERIAL = "Home bakers need to master starters, hydration, shaping, scoring and baking."


def course(granularity: int = 1) -> dict[str, Any]:
    return build_structure("course", "Sourdough baking", granularity, "home bakers", MATERIAL)


async def generate(
    shelf: ArtifactShelf, structure: Mapping[str, Any], llm: Any = None, **params: Any
) -> Any:
    inputs = {"structure": dict(structure)}
    return await ContentGenerator(llm).process("generate", inputs, params, shelf.context())


def markdown_tokens(markdown: str) -> list[Any]:
    return MarkdownIt("commonmark").parse(markdown)


def headings(markdown: str) -> list[tuple[str, str]]:
    tokens = markdown_tokens(markdown)
    return [
        (t.tag, "".join(c.content for c in tokens[i + 1].children or []))
        for i, t in enumerate(tokens)
        if t.type == "heading_open"
    ]


def test_declares_its_name_action_and_defaults() -> None:
    worker = ContentGenerator()
    assert (worker.name, worker.info.actions) == ("content_generator", ("generate",))
    assert dict(worker.defaults) == {
        "words_per_element": 120,
        "max_elements": 200,
        "concurrency": 4,
    }


@pytest.mark.anyio
async def test_without_a_model_each_element_gets_labelled_template_text(
    shelf: ArtifactShelf,
) -> None:
    tree = course()
    result = await generate(shelf, tree)
    out = result.output
    assert out["method"] == result.summary.method == "non-llm:prose-template"
    assert (out["title"], out["topic"], out["structure_type"]) == (
        "Course: Sourdough baking",
        "Sourdough baking",
        "course",
    )
    sections = out["sections"]
    assert [s["path"] for s in sections] == [
        "1",
        "1.1",
        "1.2",
        "2",
        "2.1",
        "2.2",
        "3",
        "3.1",
        "3.2",
    ]
    assert sections[0] == {
        "path": "1",
        "title": "Starters",
        "type": "module",
        "text": "Module 1: Starters. Module 1 of the course on Sourdough baking for home bakers "
        "learners: starters. It has 2 parts: Introduction to starters; and Key ideas of starters.",
    }
    assert sections[2]["text"].startswith("Lesson 2: Key ideas of starters.")
    assert out["section_count"] == 9 == tree["element_count"]
    assert out["word_count"] == sum(len(s["text"].split()) for s in sections)
    assert out["omitted_elements"] == 0
    data, media_type = shelf.artifacts["content.md"]
    assert media_type == MEDIA_TYPE
    assert out["artifacts"] == [
        {
            "type": "content",
            "name": "content.md",
            "media_type": MEDIA_TYPE,
            "format": "markdown",
            "ref": unstructure(StorageRef.inline(data, MEDIA_TYPE)),
        }
    ]
    markdown = data.decode()
    assert "> Template text: no language model was configured" in markdown
    assert headings(markdown)[:3] == [
        ("h1", "Course: Sourdough baking"),
        ("h2", "1 Starters"),
        ("h3", "1.1 Introduction to starters"),
    ]
    assert result.summary.usage == Usage()
    assert [p for p, _ in shelf.progress] == [10, 30, 80, 100]


@pytest.mark.anyio
async def test_template_text_is_capped_never_padded(shelf: ArtifactShelf) -> None:
    out = (await generate(shelf, course(), words_per_element=20)).output
    assert all(len(s["text"].split()) <= 20 for s in out["sections"])
    assert out["sections"][0]["text"].endswith("…")
    assert not out["sections"][1]["text"].endswith("…")  # a short lesson stays short


@pytest.mark.anyio
async def test_max_elements_leaves_the_rest_out_and_says_so(shelf: ArtifactShelf) -> None:
    result = await generate(shelf, course(3), max_elements=4)
    out = result.output
    assert [s["path"] for s in out["sections"]] == ["1", "1.1", "1.1.1", "1.1.2"]
    assert out["omitted_elements"] == 65 - 4
    assert "61 element(s) beyond max_elements left out" in result.summary.notes


@pytest.mark.anyio
async def test_untrusted_text_is_escaped_in_the_markdown(shelf: ArtifactShelf) -> None:
    tree = course()
    tree["title"] = EVIL
    tree["elements"][0]["title"] = EVIL
    tree["elements"][0]["description"] = "1. not a list\n\n- nor this"
    out = (await generate(shelf, tree)).output
    markdown = shelf.artifacts["content.md"][0].decode()
    tokens = markdown_tokens(markdown)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {
        "link_open",
        "html_inline",
        "html_block",
        "bullet_list_open",
        "ordered_list_open",
    }
    assert [tag for tag, _ in headings(markdown)].count("h1") == 1
    assert headings(markdown)[0] == ("h1", " ".join(EVIL.split()))
    # The JSON keeps the text as it is (whitespace collapsed, as the tree is read).
    assert out["sections"][0]["title"] == " ".join(EVIL.split())


@pytest.mark.anyio
async def test_without_a_model_output_is_deterministic(shelf: ArtifactShelf) -> None:
    first = await generate(shelf, course(2))
    markdown = shelf.artifacts["content.md"][0]
    second = await generate(shelf, course(2))
    assert dumps(first.output) == dumps(second.output)
    assert shelf.artifacts["content.md"][0] == markdown


def writer(words: int = 30) -> Any:
    """A script that writes `words` words for each element, naming its path."""

    def answer(messages: Sequence[Message], schema: Mapping[str, Any] | None) -> dict[str, Any]:
        element = json.loads(messages[1].content)["data"]["element"]
        text = " ".join([f"Text for {element['path']}."] + ["word"] * (words - 3))
        return {"text": f"{text}\n\n  Second   paragraph."}

    return answer


@pytest.mark.anyio
async def test_with_a_model_every_element_is_written_once(shelf: ArtifactShelf) -> None:
    tree = course()
    tree["elements"][1]["description"] = EVIL
    llm = ScriptedLLM(writer(), cost_usd=Decimal("0.0005"))
    result = await generate(shelf, tree, llm, words_per_element=40, concurrency=3)
    out = result.output
    assert out["method"] == result.summary.method == "llm:scripted-1"
    assert [s["text"].split("\n\n")[0].split()[2] for s in out["sections"]] == [
        f"{s['path']}." for s in out["sections"]
    ]
    assert out["sections"][0]["text"].endswith("\n\nSecond paragraph.")
    assert len(llm.calls) == 9
    assert result.summary.usage == Usage(prompt_tokens=900, completion_tokens=450)
    assert result.summary.cost == Cost(llm_usd=Decimal("0.0045"))
    for call in llm.calls:
        assert "Evil" not in call.messages[0].content
        assert "Sourdough" not in call.messages[0].content
        assert call.schema == {
            "type": "object",
            "additionalProperties": False,
            "required": ["text"],
            "properties": {"text": {"type": "string"}},
        }
    lesson = next(
        json.loads(c.messages[1].content)["data"]
        for c in llm.calls
        if json.loads(c.messages[1].content)["data"]["element"]["path"] == "2.1"
    )
    assert lesson["element"]["parents"] == ["Hydration"]
    assert lesson["words"] == 40
    assert lesson["target_audience"] == "home bakers"
    module = next(
        json.loads(c.messages[1].content)["data"]
        for c in llm.calls
        if json.loads(c.messages[1].content)["data"]["element"]["path"] == "2"
    )
    assert module["element"]["description"] == " ".join(EVIL.split())
    assert module["element"]["children"] == ["Introduction to hydration", "Key ideas of hydration"]
    markdown = shelf.artifacts["content.md"][0].decode()
    assert "Template text" not in markdown
    assert "llm:scripted-1" in markdown


@pytest.mark.anyio
@pytest.mark.parametrize(
    "reply",
    [
        {"text": " ".join(["word"] * 41)},  # more than twice the 20 asked
        {"text": "   "},
        {"text": 7},
        {"prose": "hello"},
        {"text": "ok", "notes": "extra"},
    ],
)
async def test_a_reply_outside_the_schema_or_length_fails_the_stage(
    shelf: ArtifactShelf, reply: dict[str, Any]
) -> None:
    llm = ScriptedLLM(lambda messages, schema: reply)
    with pytest.raises(StageFailedError):
        await generate(shelf, course(), llm, words_per_element=20)
    assert "content.md" not in shelf.artifacts


@pytest.mark.anyio
async def test_one_failing_element_fails_the_stage_with_its_error(shelf: ArtifactShelf) -> None:
    def answer(messages: Sequence[Message], schema: Mapping[str, Any] | None) -> Any:
        element = json.loads(messages[1].content)["data"]["element"]
        if element["path"] == "2.2":
            return WorkerError("model unreachable")
        return {"text": "Fine text."}

    with pytest.raises(WorkerError, match="unreachable"):
        await generate(shelf, course(), ScriptedLLM(answer), concurrency=2)


@pytest.mark.parametrize(
    ("inputs", "params", "field"),
    [
        ({}, {}, "structure"),
        ({"structure": {"elements": []}}, {}, "topic"),
        ({"structure": {"topic": "t", "elements": [{"title": ["x"]}]}}, {}, "title"),
        (
            {"structure": {"topic": "t", "elements": []}},
            {"words_per_element": 19},
            "words_per_element",
        ),
        (
            {"structure": {"topic": "t", "elements": []}},
            {"words_per_element": 1001},
            "words_per_element",
        ),
        ({"structure": {"topic": "t", "elements": []}}, {"max_elements": 0}, "max_elements"),
        ({"structure": {"topic": "t", "elements": []}}, {"concurrency": 17}, "concurrency"),
    ],
)
def test_check_input_refuses_unusable_work(
    inputs: dict[str, Any], params: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadInputError, match=field):
        ContentGenerator().check_input("generate", inputs, params)


def test_estimate_counts_tokens_only_with_a_model() -> None:
    inputs = {"structure": course()}
    assert ContentGenerator().estimate("generate", inputs, {}).prompt_tokens == 0
    estimate = ContentGenerator(ScriptedLLM([])).estimate("generate", inputs, {})
    assert estimate.completion_tokens == 9 * 120 * 3 // 2
