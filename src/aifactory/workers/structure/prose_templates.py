"""Template prose: the content generator's non-LLM method, `non-llm:prose-template`.

Each element becomes one paragraph phrased from the structure alone, in full:

1. an opener naming the element by its type and order: "Lesson 2: Key ideas of starters."
   (the type in words, sentence case);
2. its description, as written;
3. for an element with children, what it is made of: "It has 3 parts: A; B; and C.";
4. the paragraph is capped at `words` words (cut with "…"); it is never padded.

It says only what the structure says. The generator labels the document as template text.
"""

from __future__ import annotations

from .tree import TreeNode

__all__ = ["METHOD", "template_text"]

METHOD = "non-llm:prose-template"


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    return text if text[-1] in ".!?…" else f"{text}."


def _label(kind: str) -> str:
    words = kind.replace("_", " ").strip() or "element"
    return words[:1].upper() + words[1:]


def _parts(titles: list[str]) -> str:
    if len(titles) == 1:
        return f"It has one part: {titles[0]}."
    return f"It has {len(titles)} parts: {'; '.join(titles[:-1])}; and {titles[-1]}."


def template_text(node: TreeNode, words: int) -> str:
    """The template paragraph for `node`, at most `words` words."""
    title = node.title or "Untitled"
    opener = f"{_label(node.type)} {node.order}: {_sentence(title)}"
    pieces = [opener, _sentence(node.description)]
    titles = [child.title or "Untitled" for child in node.children]
    if titles:
        pieces.append(_parts(titles))
    text = " ".join(piece for piece in pieces if piece).split()
    if len(text) > words:
        return " ".join(text[:words]) + "…"
    return " ".join(text)
